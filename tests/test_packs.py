"""Packs (issue: many runs per GPU pass): runs of one network that differ in seed, trainable
parts and initialisation train as one fused network; each equals the same run trained alone,
keeps its frozen tensors bit-identical, and is stored (and resumed) as an ordinary run."""

from pathlib import Path

import pytest
import torch

from bnlib import ConfigError, RunConfig, analysis, models, results
from bnlib.architectures import build_network, family, lookup
from bnlib.freezing import apply_trainable, trainable_names
from bnlib.packs import Pack, PackSGD, plan_packs, trains_convolutions
from bnlib.train import train, train_pack

MODES = ("all", "all,-bn", "none", "bn", "bn,shortcut,output", "shortcut,output")
BN_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def config(trainable, seed=0, **values):
    return RunConfig.from_flat(**{"model": "resnet-8", "data": "synthetic", "epochs": 2, "seed": seed,
                                  "trainable": trainable, **values})


def final_state(run):
    return analysis.load_weights(run.run_dir)


def assert_close_states(a, b):
    """The tolerance of fused seeds (test_fused): a packed run equals the run alone to within
    float rounding of grouped against ordinary convolutions."""
    assert a.keys() == b.keys()
    for name in b:
        torch.testing.assert_close(a[name].float(), b[name].float(), rtol=1e-3, atol=1e-4, msg=name)


def initial_state(c):
    m = c.model
    return models.build(m.model, bn_init=m.bn_init, feature_init=m.feature_init, normalize=m.normalize,
                        seed=c.train.seed).state_dict()


@pytest.fixture(scope="module")
def twelve(tiny, tmp_path_factory):
    """The paper's six modes x 2 seeds, trained as one pack and each alone."""
    root = tmp_path_factory.mktemp("packs")
    configs = [config(mode, seed) for mode in MODES for seed in (0, 1)]
    packed = train_pack(configs, root / "pack", dataset=tiny)
    alone = [train(c, root / "alone", dataset=tiny) for c in configs]
    return configs, packed, alone


def test_each_packed_run_equals_the_run_trained_alone(twelve):
    configs, packed, alone = twelve
    assert [r.status for r in packed] == ["complete"] * 12 and len({r.run_dir for r in packed}) == 12
    for c, p, a in zip(configs, packed, alone):
        assert Path(p.run_dir).name == Path(a.run_dir).name  # the same address as alone
        assert_close_states(final_state(p), final_state(a))
        assert abs(p.test_accuracy - a.test_accuracy) <= 1.0, c.train.trainable  # 128 test images: one is 0.8
        folder = Path(p.run_dir)
        for name in (results.CONFIG, results.METRICS, results.BATCHNORM, results.MODEL, results.RESULT):
            assert (folder / name).is_file(), name
        assert not (folder / results.CHECKPOINT).exists()
        assert results.read_json(folder / results.CONFIG)["trainable"] == c.train.trainable


def test_frozen_tensors_of_every_packed_run_stay_bit_identical(twelve):
    configs, packed, _ = twelve
    for c, run in zip(configs, packed):
        initial, final = initial_state(c), final_state(run)
        trained = set(trainable_names(models.build("resnet-8", device="meta"), c.train.trainable))
        params = {name for name, _ in models.build("resnet-8", device="meta").named_parameters()}
        for name in params - trained:
            assert torch.equal(final[name], initial[name]), (c.train.trainable, name)
        for name in trained:
            assert not torch.equal(final[name], initial[name]), (c.train.trainable, name)
        if c.train.trainable == "none":  # only BatchNorm's running statistics move
            changed = {name for name in final if not torch.equal(final[name], initial[name])}
            assert changed and all(name.endswith(BN_STATISTICS) for name in changed)
            assert "bn.running_mean" in changed


def test_a_pack_skips_weight_gradients_no_run_needs():
    net = build_network("resnet-8", runs=3)
    frozen_convs = Pack.of(net, ["bn", "none", "bn,shortcut,output"])
    params = dict(net.named_parameters())
    frozen_convs.apply(net)
    assert not params["conv.weight"].requires_grad and not params["blocks.0.conv1.weight"].requires_grad
    assert params["bn.weight"].requires_grad and params["fc.weight"].requires_grad
    assert params["blocks.1.shortcut.0.weight"].requires_grad  # the shortcut run trains it
    Pack.of(net, ["bn", "all,-bn", "none"]).apply(net)
    assert params["conv.weight"].requires_grad
    masks = Pack.of(net, ["bn", "all,-bn", "none"]).masks(net)
    assert masks["bn.weight"].flatten().tolist() == [True] * 16 + [False] * 32
    assert masks["conv.weight"].shape == (48, 1, 1, 1)


def test_pack_sgd_is_torch_sgd_on_trained_slices_and_exact_identity_on_frozen_ones():
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 3, 3, 3), (6,), (6, 4)]
    masks = [torch.tensor([True, False, True]).repeat_interleave(2).view(-1, 1, 1, 1), None,
             torch.tensor([False, False, True]).repeat_interleave(2).view(-1, 1)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    reference = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    initial = [p.detach().clone() for p in ours]
    a = PackSGD(ours, masks, lr=0.1, momentum=0.9, weight_decay=1e-4)
    b = torch.optim.SGD(reference, lr=0.1, momentum=0.9, weight_decay=1e-4)
    for step in range(3):
        grads = [torch.randn(s, generator=g) for s in shapes]
        for p, q, grad, mask in zip(ours, reference, grads, masks):
            p.grad = grad.clone()
            if mask is not None and step == 1:
                p.grad = torch.where(mask, p.grad, float("nan"))  # a diverged neighbour's gradient
            q.grad = grad.clone()
        a.step()
        b.step()
    for p, q, p0, mask in zip(ours, reference, initial, masks):
        mask = torch.ones_like(p, dtype=torch.bool) if mask is None else mask.expand_as(p)
        torch.testing.assert_close(p[mask], q.detach()[mask], rtol=0, atol=1e-7)
        assert torch.equal(p.detach()[~mask], p0[~mask])
        assert torch.equal(a.state[p]["momentum_buffer"][~mask], torch.zeros_like(p0[~mask]))


def test_a_pack_mixing_initialisations(tiny, tmp_path):
    configs = [config("bn", 0, bn_init="ones-beta-one", feature_init="binary", epochs=1),
               config("all,-bn", 1, bn_init="symmetric", feature_init="orthogonal", epochs=1)]
    packed = train_pack(configs, tmp_path / "pack", dataset=tiny)
    for c, p in zip(configs, packed):
        a = train(c, tmp_path / "alone", dataset=tiny)
        assert Path(p.run_dir).name == Path(a.run_dir).name
        assert_close_states(final_state(p), final_state(a))
        initial = initial_state(c)
        for name in ("conv.weight", "bn.weight"):  # each run keeps its own initialisation when frozen
            if name not in trainable_names(models.build("resnet-8", device="meta"), c.train.trainable):
                assert torch.equal(final_state(p)[name], initial[name])


class FakeClock:
    """As in test_train: epoch k ends at k * ``seconds`` on the trainer's clock."""

    def __init__(self, monkeypatch, seconds=100.0):
        from bnlib import train as train_module

        self.now, self.seconds = 0.0, seconds
        monkeypatch.setattr(train_module, "_clock", lambda: self.now)

    def on_epoch(self, row):
        self.now = row["epoch"] * self.seconds


def test_packed_checkpoints_resume_alone_and_alone_checkpoints_resume_in_a_pack(twelve, tiny, tmp_path,
                                                                                monkeypatch):
    configs, packed, alone = twelve
    reference = {c: (p, a) for c, p, a in zip(configs, packed, alone)}
    runs = tmp_path / "cut"
    in_pack = [config("all", 0), config("bn", 1), config("none", 1)]
    by_itself = config("all,-bn", 1)
    clock = FakeClock(monkeypatch)  # 100 s an epoch, 150 s given: each stops after epoch 1
    stopped = train_pack(in_pack, runs, dataset=tiny, time_limit=150, on_epoch=clock.on_epoch)
    clock.now = 0.0
    stopped.append(train(by_itself, runs, dataset=tiny, time_limit=150, on_epoch=clock.on_epoch))
    monkeypatch.undo()
    assert [(r.status, r.epochs_completed) for r in stopped] == [("stopped", 1)] * 4

    # a packed run's checkpoint is what the run alone stores: torch's SGD over its trainable tensors
    for c, run in zip(in_pack, stopped):
        state = results.load_torch(Path(run.run_dir) / results.CHECKPOINT)
        assert state["address"] == Path(run.run_dir).name and state["epoch"] == 1
        single = models.build("resnet-8")
        params = apply_trainable(single, c.train.trainable)
        if not params:
            assert state["optimizer"] is None
            continue
        expected = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4).state_dict()["param_groups"]
        assert state["optimizer"]["param_groups"] == expected
        assert sorted(state["optimizer"]["state"]) == list(range(len(params)))
        assert [v["momentum_buffer"].shape for _, v in sorted(state["optimizer"]["state"].items())] == \
            [p.shape for p in params]

    # the packed "all" run resumes alone, the run stopped alone resumes in a pack with the others
    resumed = [train(in_pack[0], runs, dataset=tiny)]
    resumed += train_pack([*in_pack[1:], by_itself], runs, dataset=tiny)
    assert [(r.status, r.resumed_from_epoch, r.epochs_completed) for r in resumed] == [("complete", 1, 2)] * 4
    for c, run in zip([*in_pack, by_itself], resumed):
        p, a = reference[c]
        assert Path(run.run_dir).name == Path(p.run_dir).name
        assert_close_states(final_state(run), final_state(p))
        assert_close_states(final_state(run), final_state(a))
        initial = initial_state(c)
        trained = set(trainable_names(models.build("resnet-8", device="meta"), c.train.trainable))
        for name, _ in models.build("resnet-8", device="meta").named_parameters():
            if name not in trained:
                assert torch.equal(final_state(run)[name], initial[name]), (c.train.trainable, name)


def test_a_pack_holds_runs_of_one_computation(tiny, tmp_path):
    with pytest.raises(ConfigError, match="differ only in seed, trainable"):
        train_pack([config("bn"), config("bn", 1, lr=0.05)], tmp_path, dataset=tiny)
    with pytest.raises(ConfigError, match="differ only"):
        train_pack([config("bn"), config("bn", 1, normalize=False)], tmp_path, dataset=tiny)
    with pytest.raises(ConfigError, match="each run once"):  # two spellings of one mode: one run
        train_pack([config("bn,shortcut,output"), config("shortcut,output,bn")], tmp_path, dataset=tiny)
    assert not list(tmp_path.glob("*/result.json"))


# --------------------------------------------------------------------------- the planner

def test_planner_groups_by_network_normalize_and_frozen_convolutions():
    grid = [config(mode, seed, model=model, normalize=normalize)
            for model in ("resnet-8", "resnet-14") for normalize in (True, False)
            for mode in MODES for seed in (0, 1)]
    packs = plan_packs(grid, max_runs=64)
    assert len(packs) == 8 and sum(map(len, packs)) == len(grid)
    for pack in packs:
        assert len({(c.model.model, c.model.normalize) for c in pack}) == 1
        assert len({trains_convolutions(c) for c in pack}) == 1
    first = packs[0]  # in input order: resnet-8 with normalisation, all-style
    assert [c.train.trainable for c in first] == ["all", "all", "all,-bn", "all,-bn"]
    assert [c.train.trainable for c in packs[1]] == [m for m in MODES[2:] for _ in (0, 1)]
    assert plan_packs(list(reversed(grid)), max_runs=64)[0][0].model.model == "resnet-14"
    assert plan_packs(grid, max_runs=64) == packs  # deterministic
    # one run per pack: the input's order, whichever group each run falls in
    assert [c for p in plan_packs(grid, max_runs=1) for c in p] == grid
    assert [c for p in plan_packs(grid[::-1], max_runs=1) for c in p] == grid[::-1]


def test_planner_keeps_everything_else_apart_and_each_run_once():
    base = [config("bn", s) for s in range(3)]
    packs = plan_packs(base + [config("bn", 0, lr=0.05), config("bn", 0, epochs=3),
                               config("bn", 0, batch_size=64), config("bn", 0, augment=False),
                               config("bn", 0, precision="bf16"), config("bn", 1)], max_runs=8)
    assert packs[0] == base and [len(p) for p in packs] == [3, 1, 1, 1, 1, 1]
    varied = [config("bn", 0, bn_init=b, feature_init=f) for b in ("uniform", "ones") for f in ("he-normal", "binary")]
    assert plan_packs(varied, max_runs=8) == [varied]


def test_planner_bounds_pack_size_by_max_runs_and_memory():
    grid = [config("bn", s) for s in range(10)]
    assert [len(p) for p in plan_packs(grid, max_runs=4)] == [4, 3, 3]
    assert [len(p) for p in plan_packs(grid, max_runs=1)] == [1] * 10
    assert [c.train.seed for p in plan_packs(grid, max_runs=4) for c in p] == list(range(10))
    network = lookup("resnet-8")
    one = family(network).memory(network, 128)
    assert [len(p) for p in plan_packs(grid, max_runs=8, memory_budget=2.5 * one)] == [2] * 5
    assert [len(p) for p in plan_packs(grid, max_runs=8, memory_budget=0.5 * one)] == [1] * 10
    with pytest.raises(ValueError):
        plan_packs(grid, max_runs=0)
