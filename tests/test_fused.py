"""Fused replicates (issue: fast training): R seeds trained as one grouped network equal the
same seeds trained alone, and are stored as ordinary runs."""

from pathlib import Path

import pytest
import torch

from bnlib import ConfigError, RunConfig, analysis, models, results
from bnlib.train import train, train_replicates


def config(seed, **values):
    return RunConfig.from_flat(**{"model": "resnet-8", "data": "synthetic", "epochs": 2, "seed": seed,
                                  "trainable": "bn,shortcut,output", **values})


def test_fused_forward_equals_each_network_alone():
    nets = [models.build("resnet-8", seed=s).train() for s in (0, 1, 2)]
    fused = models.fuse(nets).train()
    xs = [torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    out = fused(torch.cat(xs, dim=1))
    assert out.shape == (8, 3, 10)
    for r, (net, x) in enumerate(zip(nets, xs)):
        torch.testing.assert_close(out[:, r], net(x), rtol=1e-4, atol=1e-5)
    # running statistics are per replicate too
    for r, net in enumerate(nets):
        torch.testing.assert_close(fused.bn.running_mean.chunk(3)[r], net.bn.running_mean, rtol=1e-4, atol=1e-6)


def test_split_inverts_stack():
    nets = [models.build("resnet-8", seed=s) for s in (3, 4)]
    states = models.split_state(models.fuse(nets).state_dict(), 2)
    for net, state in zip(nets, states):
        for name, tensor in net.state_dict().items():
            assert torch.equal(tensor, state[name]), name


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_replicate_matches_the_same_replicate_trained_alone(tiny, tmp_path, channels_last):
    fused = train_replicates([config(s, channels_last=channels_last) for s in (0, 1, 2)], tmp_path / "fused",
                             dataset=tiny)
    alone = train(config(1, channels_last=channels_last), tmp_path / "alone", dataset=tiny)
    assert [r.status for r in fused] == ["complete"] * 3 and len({r.run_dir for r in fused}) == 3
    a = analysis.load_weights(fused[1].run_dir)
    b = analysis.load_weights(alone.run_dir)
    for name in b:
        torch.testing.assert_close(a[name].float(), b[name].float(), rtol=1e-3, atol=1e-4, msg=name)
    assert abs(fused[1].test_accuracy - alone.test_accuracy) <= 1.0  # 128 test images: one image is 0.8
    # stored as ordinary runs: same addresses as separate runs, found again without training
    assert Path(fused[1].run_dir).name == Path(alone.run_dir).name
    again = train(config(2, channels_last=channels_last), tmp_path / "fused", dataset=tiny)
    assert again.cached


def test_fused_replicates_resume_from_their_checkpoints(tiny, tmp_path):
    class Stop(Exception):
        pass

    def stop(row):
        if row["epoch"] == 2:
            raise Stop

    configs = [config(s, epochs=3) for s in (0, 1)]
    with pytest.raises(Stop):
        train_replicates(configs, tmp_path / "cut", dataset=tiny, on_epoch=stop)
    resumed = train_replicates(configs, tmp_path / "cut", dataset=tiny)
    whole = train_replicates(configs, tmp_path / "whole", dataset=tiny)
    assert [r.resumed_from_epoch for r in resumed] == [1, 1]
    for a, b in zip(resumed, whole):
        sa = analysis.load_weights(a.run_dir)
        sb = analysis.load_weights(b.run_dir)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_replicates_must_differ_only_in_seed(tiny, tmp_path):
    with pytest.raises(ConfigError, match="differ in their seed"):
        train_replicates([config(0), config(1, trainable="all")], tmp_path, dataset=tiny)
    with pytest.raises(ConfigError):
        train_replicates([config(0), config(0)], tmp_path, dataset=tiny)


def test_bf16_keeps_batchnorm_in_fp32(tiny, tmp_path):
    result = train(config(0, precision="bf16", epochs=1), tmp_path, dataset=tiny)
    assert result.status == "complete"
    state = analysis.load_weights(result.run_dir)
    assert state["bn.weight"].dtype == torch.float32 and state["bn.running_var"].dtype == torch.float32
    plain = train(config(0, epochs=1), tmp_path, dataset=tiny)
    assert plain.run_dir != result.run_dir  # precision changes numerics: a different run
