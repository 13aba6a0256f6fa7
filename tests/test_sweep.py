"""Sweeps on an embedded local Ray: skip finished runs, survive a killed driver, refuse bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bnlib import results

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("ray")


def sweep(*args, runs, **popen):
    command = [sys.executable, "-m", "bnlib", "sweep", "--data", "synthetic", "--runs-dir", str(runs),
               "--no-progress", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    if popen:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **popen)
    return subprocess.run(command, env=env, capture_output=True, text=True)


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def whole_curves(runs: Path) -> int:
    """Runs whose Figure 7 clamping curve is complete (it is stored an evaluation at a time)."""
    from bnlib.analysis import clamp_missing

    return sum(not clamp_missing(p.parent) for p in runs.glob("*/clamping.csv"))


def finishes(runs: Path) -> dict[str, int]:
    return {p.parent.name: p.read_text().count(" finish ") for p in runs.glob("*/events.log")}


def test_smoke_grid_then_nothing_to_do(tmp_path):
    runs = tmp_path / "runs"
    planned = sweep("--models", "resnet-8", "--trainable", "bn,bn+shortcut+output", "--seeds", "2", "--epochs", "1",
                    "--dry-run", runs=runs)
    assert planned.returncode == 0 and last_json(planned.stdout) == {"runs": 4, "done": 0, "todo": 4}
    assert planned.stdout.count("todo resnet-8") == 4 and not runs.exists()  # a dry run trains and writes nothing
    late = sweep("--models", "resnet-8", "--trainable", "bn,bn+shortcut+output", "--seeds", "2", "--epochs", "1",
                 "--time-limit", "0s", runs=runs)
    assert late.returncode == 3, late.stderr[-2000:]  # out of time: nothing launched, the grid is not done
    assert last_json(late.stdout) | {"runs_dir": None} == {"trained": 0, "skipped": 0, "failed": 0, "diverged": 0,
                                                            "stopped": 4, "runs_dir": None}
    log = tmp_path / "sweep.log"
    log.write_text("--- started ---\n")
    first = sweep("--models", "resnet-8", "--trainable", "bn,bn+shortcut+output", "--seeds", "2", "--epochs", "1",
                  "--log", str(log), "--time-limit", "1h", runs=runs)  # a limit that fits: the grid is done
    assert first.returncode == 0, first.stderr[-2000:]
    assert last_json(first.stdout) | {"runs_dir": None} == {"trained": 4, "skipped": 0, "failed": 0, "diverged": 0,
                                                             "stopped": 0, "runs_dir": None}
    assert first.stdout.count("test accuracy") == 4  # a line per finished run
    lines = log.read_text().splitlines()  # appended to the log, after what it held
    assert lines[0] == "--- started ---" and lines[1:] == [l for l in first.stdout.splitlines() if "test accuracy" in l]
    table = results.load(runs)
    assert len(table) == 4 and set(table["status"]) == {"complete"}
    assert set(table["trainable"]) == {"bn", "bn,shortcut,output"}
    clamped = {t for t, d in zip(table["trainable"], table["run_dir"]) if (Path(d) / "clamping.csv").is_file()}
    assert clamped == {"bn"}  # Figure 7's curve is stored with each All / BatchNorm-only run

    second = sweep("--models", "resnet-8", "--trainable", "bn,bn+shortcut+output", "--seeds", "2", "--epochs", "1",
                   runs=runs)
    assert second.returncode == 0
    assert last_json(second.stdout)["trained"] == 0 and last_json(second.stdout)["skipped"] == 4
    done = sweep("--models", "resnet-8", "--trainable", "bn,bn+shortcut+output", "--seeds", "2", "--epochs", "1",
                 "--dry-run", runs=runs)
    assert last_json(done.stdout) == {"runs": 4, "done": 4, "todo": 0}
    assert set(finishes(runs).values()) == {1}


def test_killed_driver_restarts_and_every_run_is_done_once(tmp_path):
    runs = tmp_path / "runs"
    args = ("--models", "resnet-8", "--trainable", "bn,all", "--seeds", "2", "--epochs", "3")
    driver = sweep(*args, runs=runs, start_new_session=True)
    deadline = time.time() + 300
    # a bn/all run is done when its Figure 7 clamping curve is stored whole (after result.json)
    while not whole_curves(runs) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    driver.wait()
    done_before = whole_curves(runs)
    assert 1 <= done_before < 4, "the first sweep should be killed midway"

    again = sweep(*args, runs=runs)
    assert again.returncode == 0, again.stderr[-2000:]
    counts = last_json(again.stdout)
    assert counts["skipped"] == done_before and counts["trained"] == 4 - done_before and counts["failed"] == 0
    assert finishes(runs) and set(finishes(runs).values()) == {1}  # no run finished twice
    table = results.load(runs)
    assert len(table) == 4 and set(table["status"]) == {"complete"} and set(table["epochs_completed"]) == {3}
    assert whole_curves(runs) == 4


@pytest.mark.parametrize("args, words", [
    (("--models", "resnet-7"), "unknown model"),
    (("--trainable", "bn,weights"), "unknown trainable part"),
    (("--seeds", "0"), "zero runs"),
    (("--address", "127.0.0.1:1", "--epochs", "1"), "cannot reach"),
])
def test_bad_input_exits_2_and_starts_nothing(args, words, tmp_path):
    runs = tmp_path / "runs"
    done = sweep(*args, runs=runs)
    assert done.returncode == 2 and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not runs.exists()


def test_a_task_started_past_the_deadline_stops_and_a_late_curve_waits_for_the_next_sweep(tmp_path):
    """What each Ray task does with the time left (the tasks run here in-process)."""
    from bnlib import RunConfig, data
    from bnlib.sweep import _slots, _train_task, is_finished, report_line, train_with_curves

    runs = tmp_path / "runs"
    config = RunConfig.from_flat(model="resnet-8", trainable="bn", epochs=1, data="synthetic")
    out = _train_task(config.flat(), str(runs), 0, deadline=time.time() - 1)
    assert (out["status"], out["epochs_completed"], out["test_accuracy"]) == ("stopped", 0, None)

    dataset = data.load("synthetic")
    [trained] = train_with_curves([config], runs, dataset, time_limit=3600)  # trains, then computes the curve
    assert trained.status == "complete" and (Path(trained.run_dir) / "clamping.csv").is_file()
    (Path(trained.run_dir) / "clamping.csv").unlink()  # as if the limit had come right after training
    [late] = train_with_curves([config], runs, dataset, time_limit=0)
    assert late.status == "stopped" and not (Path(late.run_dir) / "clamping.csv").exists()
    assert is_finished([config], runs) == [False]  # the next sweep adds the curve
    [again] = train_with_curves([config], runs, dataset)
    assert again.status == "complete" and again.cached and is_finished([config], runs) == [True]

    assert _slots({"CPU": 16.0, "GPU": 2.0}, 0.5, 1.0) == 4 and _slots({"CPU": 2.0}, 0.0, 2.0) == 1
    assert _slots({"CPU": 2.0}, 0.0, 4.0) == 1  # a run that needs more than there is still gets launched
    assert report_line(config, out) == "resnet-8 bn seed 0: stopped by the time limit after epoch 0 of 1, " \
        "no epoch trained, " + f"{out['seconds']:.0f} s"
    assert "complete, test accuracy" in report_line(config, {**again.to_dict(), "seconds": 1.0})


def test_only_figure2_all_and_bn_runs_get_a_clamping_curve():
    from bnlib import RunConfig
    from bnlib.sweep import needs_clamping

    config = RunConfig.from_flat
    assert all(needs_clamping(config(trainable=t)) for t in ("bn", "gamma,beta", "all"))
    assert not any(needs_clamping(c) for c in (config(trainable="bn", bn_init="ones"), config(trainable="bn,shortcut,output"),
                                              config(trainable="bn", normalize=False), config(trainable="all,-bn"),
                                              config(trainable="bn", feature_init="binary")))
