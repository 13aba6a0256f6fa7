"""scripts/paper_on_gpu.py, which fills a short GPU lease with the paper profile: the plan it
makes from measured speeds, and the guard that stops a run at the deadline, to be resumed by a later lease."""

import importlib.util
import io
import os
import shutil
import subprocess
import tarfile
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


FAKE_TRAINER = '''
import os
run = "data/runs/paper/resnet-32_x"
print("found:", sorted(os.listdir(run)) if os.path.isdir(run) else [])
os.makedirs(run, exist_ok=True)
open(run + "/result.json", "w").write("{}")
open(run + "/checkpoint.pt", "wb").write(CHECKPOINT)
'''


def lease_call(repo: Path, out: Path, env: dict) -> str:
    out.mkdir()
    done = subprocess.run(["bash", "scripts/gpu-lease.sh"], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **env, "OUT": str(out)}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_lease_script_returns_checkpoints_in_parts_keeps_runs_for_the_next_call_and_spares_the_data(tmp_path):
    """scripts/gpu-lease.sh with a stand-in for the trainer: a stopped run's checkpoint comes back
    in parts a lease may return (15 MB at most), a second call on the same machine finds the
    first's runs, and an existing data file is never copied over."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "data" / "runs" / "paper").mkdir(parents=True)
    (repo / ".device").mkdir()
    shutil.copy(ROOT / "scripts" / "gpu-lease.sh", repo / "scripts")
    checkpoint = os.urandom(20 * 2**20)  # incompressible: two parts
    (repo / "scripts" / "paper_on_gpu.py").write_text(f"CHECKPOINT = {checkpoint!r}\n" + FAKE_TRAINER)
    (repo / ".device" / "cifar10-jpeg.tar.gz").write_bytes(b"lease copy")
    data = tmp_path / "shared" / "cifar10-jpeg.tar.gz"
    data.parent.mkdir()
    data.write_bytes(b"the real data")
    env = {"LEASE_DATA": str(data), "LEASE_KEEP": str(tmp_path / "keep.tgz")}

    assert "found: []" in lease_call(repo, tmp_path / "out1", env)
    parts = sorted((tmp_path / "out1").glob("checkpoints.tgz.*"))
    assert len(parts) == 2 and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    back = tmp_path / "back"
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        tar.extractall(back, filter="data")
    assert (back / "paper" / "resnet-32_x" / "checkpoint.pt").read_bytes() == checkpoint
    assert data.read_bytes() == b"the real data"

    shutil.rmtree(repo / "data" / "runs" / "paper" / "resnet-32_x")  # a fresh copy of the tree
    assert "found: ['checkpoint.pt', 'result.json']" in lease_call(repo, tmp_path / "out2", env)
