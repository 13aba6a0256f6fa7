"""Compact states (bnlib.compact): runs whose convolutions are frozen keep only what trains,
rebuild the rest from their config, and catch frozen tensors that would come out otherwise."""

from pathlib import Path

import pytest
import torch

from bnlib import RunConfig, analysis, compact, init, results
from bnlib.train import train

from test_train import FakeClock, assert_same_state, stopped_after_one_epoch


def config(**values):
    return RunConfig.from_flat(**{"model": "resnet-8", "data": "synthetic", "epochs": 3, **values})


def conv_weights(state):
    return [k for k in state if k.endswith("conv1.weight") or k.endswith("conv2.weight")]


@pytest.mark.parametrize("mode", ["bn", "bn,shortcut,output", "none"])
def test_a_run_resumed_from_a_compact_checkpoint_ends_bit_identical(mode, tiny, tmp_path, monkeypatch):
    c = config(trainable=mode)
    whole = train(c, tmp_path / "whole", dataset=tiny)
    folder = stopped_after_one_epoch(c, tmp_path / "cut", tiny, monkeypatch)
    checkpoint = results.load_torch(folder / results.CHECKPOINT)
    assert compact.is_compact(checkpoint["model"]) and checkpoint["epoch"] == 1
    full = analysis.load_weights(whole.run_dir)
    assert conv_weights(full) and not conv_weights(checkpoint["model"]["tensors"])  # random features left out
    assert {k for k in full if "running" in k} <= set(checkpoint["model"]["tensors"])  # statistics kept
    resumed = train(c, tmp_path / "cut", dataset=tiny)
    assert (resumed.status, resumed.resumed_from_epoch) == ("complete", 1)
    assert resumed.test_accuracy == whole.test_accuracy
    assert_same_state(analysis.load_weights(resumed.run_dir), full)
    assert compact.is_compact(results.load_torch(Path(whole.run_dir) / results.MODEL))  # final weights too
    assert_same_state(analysis.load_model(whole.run_dir).state_dict(), full)


def test_runs_that_train_convolutions_keep_the_full_form(tiny, runs, monkeypatch):
    folder = stopped_after_one_epoch(config(trainable="all"), runs, tiny, monkeypatch)
    state = results.load_torch(folder / results.CHECKPOINT)["model"]
    assert not compact.is_compact(state) and conv_weights(state)


def test_orthogonal_features_keep_the_full_form(tiny, runs, monkeypatch):
    """An SVD's bits differ between LAPACK builds, so orthogonal features are stored, not redrawn."""
    folder = stopped_after_one_epoch(config(trainable="bn", feature_init="orthogonal"), runs, tiny, monkeypatch)
    state = results.load_torch(folder / results.CHECKPOINT)["model"]
    assert not compact.is_compact(state) and conv_weights(state)
    assert all(compact.applies(config(trainable="bn", feature_init=f)) for f in init.REDRAWN_EXACTLY)


def test_a_changed_frozen_tensor_is_caught(tiny, tmp_path, monkeypatch, caplog):
    """Another torch or init that draws other random features: the checkpoint is set aside
    with one warning (the run starts again), and final weights refuse to load."""
    c = config(trainable="bn")
    done = train(c, tmp_path / "done", dataset=tiny)
    folder = stopped_after_one_epoch(c, tmp_path / "cut", tiny, monkeypatch)
    he_normal = init.FEATURE_INITS["he-normal"]
    monkeypatch.setitem(init.FEATURE_INITS, "he-normal", lambda w, g: (he_normal(w, g), w.mul_(1.0001)))
    with pytest.raises(compact.FrozenMismatch):
        analysis.load_weights(done.run_dir)
    with caplog.at_level("WARNING", logger="bnlib"):
        again = train(c, tmp_path / "cut", dataset=tiny, time_limit=0)
    warnings = [r.getMessage() for r in caplog.records if "checkpoint.pt" in r.getMessage()]
    assert len(warnings) == 1 and "frozen tensors differ" in warnings[0]
    assert again.resumed_from_epoch == 0 and len(list(folder.glob("checkpoint.pt.damaged-*"))) == 1


def test_a_stored_fingerprint_covers_every_frozen_tensor(tiny, runs, monkeypatch):
    folder = stopped_after_one_epoch(config(trainable="bn"), runs, tiny, monkeypatch)
    path = folder / results.CHECKPOINT
    state = results.load_torch(path)
    state["model"]["fingerprint"] = "0" * 64  # what a changed frozen tensor would have hashed to
    results.save_torch(path, state)
    assert train(config(trainable="bn"), runs, dataset=tiny).resumed_from_epoch == 0


def test_the_compact_checkpoint_of_resnet_110_bn_only_is_under_1_mb(tmp_path, monkeypatch):
    from bnlib import data

    small = data.synthetic(train_size=128, test_size=64)
    c = RunConfig.from_flat(model="resnet-110", trainable="bn", data="synthetic", epochs=2)
    clock = FakeClock(monkeypatch)
    stopped = train(c, tmp_path, dataset=small, time_limit=150, on_epoch=clock.on_epoch)
    path = Path(stopped.run_dir) / results.CHECKPOINT
    state = results.load_torch(path)
    assert compact.is_compact(state["model"]) and path.stat().st_size < 1_000_000
    full = sum(t.numel() * t.element_size() for t in compact.rebuild(c, 10).state_dict().values())
    assert full > 6_000_000  # the full form would be 7 MB
