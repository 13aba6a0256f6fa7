"""scripts/paper_on_gpu.py, which fills a short GPU lease with the paper profile: the plan it
makes from measured speeds, and the guard that stops a run at the deadline, to be resumed by a later lease."""

import importlib.util
import time
from pathlib import Path

import pytest

from bnlib import results
from bnlib.profiles import Plan

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("paper_on_gpu", ROOT / "scripts" / "paper_on_gpu.py")
lease = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lease)

# 1,000 training images: resnet-14 takes 10 s an epoch alone and 20 s with 5 fused seeds;
# resnet-32 twice as long. BN-only and All equally fast, so a pair takes as long as one run.
SPEEDS = {(net, mode, r): rate / slow for net, slow in (("resnet-14", 1), ("resnet-32", 2))
          for mode in lease.MODES for r, rate in ((1, 100.0), (5, 250.0))}


def plan_for(seconds):
    return lease.choose(SPEEDS, ["resnet-14", "resnet-32"], epochs=10, train_images=1000, top=5, seconds=seconds)


def test_projected_time_interpolates_between_one_and_all_seeds():
    per_epoch = 10 + (20 - 10) * 2 / 4  # three seeds: halfway between 1 and 5
    assert lease.seconds_for(SPEEDS, "resnet-14", 3, 10, 1000, 5) == pytest.approx(per_epoch * 10 * lease.OVERHEAD)
    assert lease.seconds_for(SPEEDS, "resnet-32", 1, 10, 1000, 5) == pytest.approx(200 * lease.OVERHEAD)


def test_plan_takes_as_many_networks_as_fit_then_as_many_seeds():
    one_seed_each = 2 * lease.STARTUP + (100 + 200) * lease.OVERHEAD
    assert plan_for(1e6) == (["resnet-14", "resnet-32"], 5)
    assert plan_for(one_seed_each + 1) == (["resnet-14", "resnet-32"], 1)
    assert plan_for(one_seed_each - 1) == (["resnet-14"], 5)  # resnet-14 alone, with every seed
    assert plan_for(1.0) == (["resnet-14"], 1)  # nothing fits on paper: try the first, the guard decides


def test_a_run_stops_before_an_epoch_that_would_end_past_the_deadline_and_resumes_later(tmp_path, monkeypatch):
    plan = Plan.from_parameters("smoke", data="synthetic", device="cpu", epochs=3, runs_dir=str(tmp_path))
    ticks = iter(range(0, 10000, 100))  # a clock that reads 100 s later each time: epoch 1 ends at 100, 2 at 200
    monkeypatch.setattr(lease, "time", type("Clock", (), {"time": staticmethod(lambda: float(next(ticks)))}))
    outcome = lease.experiment(plan, "resnet-8", "bn", 1, deadline=150)
    assert outcome.startswith("stopped") and "after epoch 2" in outcome
    stored = results.load(tmp_path)
    assert list(stored["status"]) == ["incomplete"]
    [run] = results.run_dirs(tmp_path)
    assert results.load_torch(run / results.CHECKPOINT)["epoch"] == 1  # epoch 2 stopped before its checkpoint

    monkeypatch.setattr(lease, "time", time)
    assert lease.experiment(plan, "resnet-8", "bn", 1, deadline=time.time() + 3600) == "complete"
    assert "start epoch=1" in (run / "events.log").read_text()  # a later lease resumes, not restarts
    assert (run / results.RESULT).is_file() and (run / "clamping.csv").is_file()  # Figure 7's curve, on the GPU


def test_measured_speed_after_a_warm_up_epoch_on_the_same_network(monkeypatch):
    from bnlib import train

    seen, run_epoch = [], train._run_epoch
    monkeypatch.setattr(train, "_run_epoch", lambda model, *a, **k: seen.append((id(model), a[3])) or run_epoch(model, *a, **k))
    plan = Plan.from_parameters("smoke", data="synthetic", device="cpu")
    assert lease.measure(plan, "resnet-8", "bn", 2, images=256, compile="none") > 0
    assert [epoch for _, epoch in seen] == [0, 1] and seen[0][0] == seen[1][0]  # timed: the second, same network
