"""The trainer: schedule, learning, determinism, the results store, resume and divergence."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bnlib import ConfigError, RunConfig, analysis, results
from bnlib.train import learning_rate, train

ROOT = Path(__file__).resolve().parents[1]


def config(**values):
    return RunConfig.from_flat(**{"model": "resnet-8", "data": "synthetic", "epochs": 1, **values})


def final_state(result):
    return analysis.load_weights(result.run_dir)


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_schedule_is_appendix_b():
    paper = config(epochs=160)
    assert [learning_rate(paper, e) for e in (0, 79, 80, 119, 120, 159)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    short = config(epochs=4)
    assert [learning_rate(short, e) for e in range(4)] == [0.1, 0.1, 0.01, 0.001]
    assert learning_rate(config(epochs=1), 0) == 0.1


def test_short_synthetic_run_learns_well_above_chance(runs):
    # --data synthetic as the CLI gets it: 1,024 images, 8 steps per epoch
    result = train(config(trainable="all", epochs=3), runs)
    assert result.status == "complete" and result.test_accuracy > 50


def test_bn_only_learns_above_chance(runs):
    # BatchNorm alone learns more slowly (ResNet-8 has 336 channels to rescale): above chance
    # (10%) after 24 steps is what a short run can show.
    result = train(config(trainable="bn", epochs=3), runs)
    metrics = results.load_metrics_of(result.run_dir)
    assert result.test_accuracy > 18
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]


def test_run_folder_contents(tiny, runs):
    result = train(config(trainable="bn", epochs=2, seed=3), runs, dataset=tiny)
    folder = Path(result.run_dir)
    stored = json.loads((folder / "config.json").read_text())
    assert stored["trainable"] == "bn" and stored["seed"] == 3 and stored["data_fingerprint"] == tiny.fingerprint
    metrics = pd.read_csv(folder / "metrics.csv")
    assert list(metrics.columns) == list(results.METRIC_COLUMNS) and list(metrics["epoch"]) == [1, 2]
    assert metrics["test_accuracy"].iloc[-1] == pytest.approx(result.test_accuracy)
    bn = results.load_batchnorm(folder)
    assert len(bn) == 336  # ResNet-8: 224 * W * (1 + 2D) / 2 = 336 BatchNorm channels
    state = final_state(result)
    assert torch.equal(torch.tensor(bn[bn.layer == "bn"]["gamma"].values, dtype=torch.float32), state["bn.weight"])
    done = json.loads((folder / "result.json").read_text())
    assert done["status"] == "complete" and done["torch_version"] == torch.__version__ and done["hardware"]
    assert not (folder / "checkpoint.pt").exists()  # removed once complete


def test_same_config_is_trained_once(tiny, runs):
    first = train(config(trainable="bn"), runs, dataset=tiny)
    second = train(config(trainable="bn", device="cpu"), runs, dataset=tiny)  # device: not part of the address
    assert not first.cached and second.cached and second.run_dir == first.run_dir
    assert second.test_accuracy == first.test_accuracy
    other = train(config(trainable="bn", seed=1), runs, dataset=tiny)
    assert other.run_dir != first.run_dir


def test_same_config_and_seed_give_the_same_run(tiny, tmp_path):
    a = train(config(trainable="all", epochs=2), tmp_path / "a", dataset=tiny)
    b = train(config(trainable="all", epochs=2), tmp_path / "b", dataset=tiny)
    assert_same_state(final_state(a), final_state(b))
    assert pd.read_csv(Path(a.run_dir) / "metrics.csv")["train_loss"].equals(
        pd.read_csv(Path(b.run_dir) / "metrics.csv")["train_loss"])


class Interrupt(Exception):
    pass


def test_resume_equals_uninterrupted_bitwise(tiny, tmp_path):
    whole = train(config(trainable="bn,shortcut,output", epochs=3), tmp_path / "whole", dataset=tiny)

    def stop_in_epoch_2(row):
        if row["epoch"] == 2:
            raise Interrupt  # after epoch 2 trained, before its checkpoint was written

    with pytest.raises(Interrupt):
        train(config(trainable="bn,shortcut,output", epochs=3), tmp_path / "cut", dataset=tiny, on_epoch=stop_in_epoch_2)
    resumed = train(config(trainable="bn,shortcut,output", epochs=3), tmp_path / "cut", dataset=tiny)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_completed == 3
    assert_same_state(final_state(whole), final_state(resumed))
    assert resumed.test_accuracy == whole.test_accuracy


class FakeClock:
    """The trainer's clock, moved on by the epochs themselves: epoch k ends at k * ``seconds``
    (a deterministic stand-in for wall time; on_epoch runs after each epoch)."""

    def __init__(self, monkeypatch, seconds=100.0):
        from bnlib import train as train_module

        self.now, self.seconds = 0.0, seconds
        monkeypatch.setattr(train_module, "_clock", lambda: self.now)

    def on_epoch(self, row):
        self.now = row["epoch"] * self.seconds


def test_time_limit_of_zero_starts_no_epoch(tiny, runs):
    result = train(config(trainable="bn", epochs=2), runs, dataset=tiny, time_limit=0)
    assert (result.status, result.epochs_completed, result.test_accuracy) == ("stopped", 0, None)
    folder = Path(result.run_dir)
    assert not (folder / results.RESULT).exists() and not (folder / results.CHECKPOINT).exists()
    assert list(results.load(runs)["status"]) == ["incomplete"]


def test_time_limit_stops_at_the_last_epoch_boundary_that_fits_and_the_run_resumes(tiny, tmp_path, monkeypatch):
    c = config(trainable="bn,shortcut,output", epochs=3)
    whole = train(c, tmp_path / "whole", dataset=tiny, time_limit=3600)  # a limit that fits: no change
    assert whole.status == "complete" and whole.epochs_completed == 3

    clock = FakeClock(monkeypatch)  # 100 s an epoch: epochs 1 and 2 end by 200 s, epoch 3 would end at 300
    cut = train(c, tmp_path / "cut", dataset=tiny, time_limit=250, on_epoch=clock.on_epoch)
    assert (cut.status, cut.epochs_completed, cut.resumed_from_epoch) == ("stopped", 2, 0)
    folder = Path(cut.run_dir)
    assert not (folder / results.RESULT).exists()  # result.json marks completion: not written
    assert results.load_torch(folder / results.CHECKPOINT)["epoch"] == 2  # every finished epoch's checkpoint
    assert cut.test_accuracy == results.load_metrics_of(folder)["test_accuracy"].iloc[-1]
    assert "stop epoch=2 time limit" in (folder / "events.log").read_text()

    again = train(c, tmp_path / "cut", dataset=tiny, time_limit=0)  # no time at all: the checkpoint stays
    assert (again.status, again.epochs_completed, again.resumed_from_epoch) == ("stopped", 2, 2)
    assert results.load_torch(folder / results.CHECKPOINT)["epoch"] == 2

    resumed = train(c, tmp_path / "cut", dataset=tiny)
    assert (resumed.status, resumed.resumed_from_epoch, resumed.epochs_completed) == ("complete", 2, 3)
    assert_same_state(final_state(whole), final_state(resumed))
    assert resumed.test_accuracy == whole.test_accuracy
    assert pd.read_csv(folder / "metrics.csv").drop(columns=["seconds", "images_per_s"]).equals(
        pd.read_csv(Path(whole.run_dir) / "metrics.csv").drop(columns=["seconds", "images_per_s"]))


def test_time_limit_stops_fused_replicates_together(tiny, runs, monkeypatch):
    from bnlib.train import train_replicates

    clock = FakeClock(monkeypatch)
    stopped = train_replicates([config(trainable="bn", epochs=3, seed=s) for s in (0, 1)], runs, dataset=tiny,
                               time_limit=150, on_epoch=clock.on_epoch)
    assert [(r.status, r.epochs_completed) for r in stopped] == [("stopped", 1)] * 2
    assert [results.load_torch(Path(r.run_dir) / results.CHECKPOINT)["epoch"] for r in stopped] == [1, 1]


def test_resume_after_kill_9(tmp_path):
    """A CLI run killed with SIGKILL mid-training resumes and ends where an uninterrupted one does."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "bnlib", "train", "--model", "resnet-8", "--trainable", "bn",
            "--epochs", "4", "--data", "synthetic", "--no-progress"]
    whole = subprocess.run(args + ["--runs-dir", str(tmp_path / "whole")], env=env, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    whole_dir = json.loads(whole.stdout.strip().splitlines()[-1])["run_dir"]

    cut_runs = tmp_path / "cut"
    process = subprocess.Popen(args + ["--runs-dir", str(cut_runs)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(cut_runs.glob("*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere inside the next epoch, possibly mid-write
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not list(cut_runs.glob("*/result.json")), "killed too late to test resuming"

    again = subprocess.run(args + ["--runs-dir", str(cut_runs)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    resumed = json.loads(again.stdout.strip().splitlines()[-1])
    assert resumed["resumed_from_epoch"] >= 1 and resumed["status"] == "complete"
    a = analysis.load_weights(whole_dir)
    b = analysis.load_weights(resumed["run_dir"])
    assert_same_state(a, b)


def test_nan_loss_is_recorded_as_diverged(tiny, runs):
    # lr 10 is the largest validation allows; without normalisation the loss still overflows
    result = train(config(trainable="all", epochs=3, lr=10, normalize=False), runs, dataset=tiny)
    assert result.status == "diverged" and result.epochs_completed < 3
    table = results.load(runs)
    assert table.loc[0, "status"] == "diverged"
    again = train(config(trainable="all", epochs=3, lr=10, normalize=False), runs, dataset=tiny)
    assert again.cached and again.status == "diverged"  # recorded, not retried


def test_results_load_reads_every_run(tiny, runs):
    for mode in ("bn", "all"):
        train(config(trainable=mode), runs, dataset=tiny)
    table = results.load(runs)
    assert sorted(table["trainable"]) == ["all", "bn"]
    assert set(table["status"]) == {"complete"}
    assert {"model", "seed", "test_accuracy", "run_dir", "data_fingerprint", "hardware"} <= set(table.columns)
    # the config's device ("auto") reads back as stored; the device it resolved to is beside it
    assert set(table["device"]) == {"auto"} and set(table["device_used"]) == {"cpu"}
    per_epoch = results.load_metrics(runs)
    assert len(per_epoch) == 2 and {"epoch", "trainable", "test_accuracy"} <= set(per_epoch.columns)
    assert results.load(runs / "missing").empty


def test_runs_stored_before_a_field_existed_read_as_its_default(tiny, runs):
    result = train(config(trainable="bn"), runs, dataset=tiny)
    path = Path(result.run_dir) / "config.json"
    stored = json.loads(path.read_text())
    del stored["precision"]  # as written before the precision field was added
    path.write_text(json.dumps(stored))
    assert results.load(runs).loc[0, "precision"] == "fp32"


@pytest.mark.parametrize("bad", [
    dict(model="resnet-7"), dict(trainable="weights"), dict(bn_init="zeros"), dict(feature_init="xavier"),
    dict(epochs=0), dict(batch_size=0), dict(lr_drops="0.5,1.5"), dict(data="/no/such/data"), dict(lr=math.nan),
])
def test_bad_config_raises_before_writing(bad, runs):
    with pytest.raises(ConfigError):
        train(config(**bad), runs)
    assert not runs.exists()


# --------------------------------------------------------------------------- damaged files

def stopped_after_one_epoch(c, runs, tiny, monkeypatch):
    """A run stopped after its first epoch, with a genuine checkpoint (100 s an epoch, 150 s given)."""
    clock = FakeClock(monkeypatch)
    stopped = train(c, runs, dataset=tiny, time_limit=150, on_epoch=clock.on_epoch)
    monkeypatch.undo()
    assert stopped.status == "stopped" and stopped.epochs_completed == 1
    return Path(stopped.run_dir)


@pytest.mark.parametrize("damage", ["empty", "cut", "random", "foreign"])
def test_a_bad_checkpoint_is_set_aside_and_the_run_restarts(damage, tiny, tmp_path, caplog, monkeypatch):
    runs = tmp_path / "runs"
    c = config(trainable="bn", epochs=2)
    reference = train(c, tmp_path / "reference", dataset=tiny)
    folder = stopped_after_one_epoch(c, runs, tiny, monkeypatch)
    checkpoint = folder / results.CHECKPOINT
    if damage == "empty":
        checkpoint.write_bytes(b"")
    elif damage == "cut":
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    elif damage == "random":
        checkpoint.write_bytes(os.urandom(4096))
    else:  # another run's checkpoint copied here
        other = train(config(trainable="all", epochs=2), tmp_path / "other", dataset=tiny, time_limit=0.0)
        state = results.load_torch(checkpoint)
        state["address"] = Path(other.run_dir).name
        results.save_torch(checkpoint, state)
    with caplog.at_level("WARNING", logger="bnlib"):
        resumed = train(c, runs, dataset=tiny)
    assert resumed.status == "complete" and resumed.resumed_from_epoch == 0  # from scratch: nothing to trust
    warning = [r.getMessage() for r in caplog.records if "checkpoint.pt" in r.getMessage()]
    assert len(warning) == 1 and str(checkpoint) in warning[0]
    assert len(list(folder.glob("checkpoint.pt.damaged-*"))) == 1  # kept, under a new name
    assert_same_state(final_state(resumed), final_state(reference))


def test_a_checkpoint_records_whose_it_is(tiny, runs, monkeypatch):
    folder = stopped_after_one_epoch(config(trainable="bn", epochs=2), runs, tiny, monkeypatch)
    state = results.load_torch(folder / results.CHECKPOINT)
    assert state["address"] == folder.name and state["epoch"] == 1


@pytest.mark.parametrize("damaged", [results.RESULT, results.METRICS, results.CONFIG])
def test_a_finished_run_with_a_damaged_file_is_repaired_by_running_it_again(damaged, tiny, runs, caplog):
    c = config(trainable="bn", epochs=2)
    first = train(c, runs, dataset=tiny)
    folder = Path(first.run_dir)
    metrics = results.load_metrics_of(folder)
    (folder / damaged).write_text("{not what it should be")
    with caplog.at_level("WARNING", logger="bnlib"):
        again = train(c, runs, dataset=tiny)
    assert again.status == "complete" and again.test_accuracy == first.test_accuracy
    assert any(str(folder / damaged) in r.getMessage() for r in caplog.records)
    assert results.read_json(folder / results.CONFIG)["model"] == "resnet-8"  # readable again
    assert results.load_metrics_of(folder)[["epoch", "train_loss", "test_accuracy"]].equals(
        metrics[["epoch", "train_loss", "test_accuracy"]])
    assert len(results.load(runs)) == 1


# --------------------------------------------------------------------------- nothing trusted unchecked

def test_a_renamed_folder_is_never_a_cached_result(tiny, tmp_path, caplog):
    seed_0 = train(config(trainable="bn"), tmp_path / "runs", dataset=tiny)
    alone = train(config(trainable="bn", seed=1), tmp_path / "alone", dataset=tiny)
    target = tmp_path / "runs" / Path(alone.run_dir).name
    Path(seed_0.run_dir).rename(target)  # seed 0's finished run under seed 1's address
    with caplog.at_level("WARNING", logger="bnlib"):
        again = train(config(trainable="bn", seed=1), tmp_path / "runs", dataset=tiny)
    assert not again.cached and again.test_accuracy == alone.test_accuracy
    assert results.read_run_config(target)["seed"] == 1
    kept = {p.name.split(".damaged-")[0] for p in target.glob("*.damaged-*")}
    assert {results.CONFIG, results.RESULT, results.METRICS, results.MODEL} <= kept
    assert_same_state(final_state(again), final_state(alone))


@pytest.mark.parametrize("value", [float("nan"), 250.0, "abc"])
def test_a_result_no_run_can_have_is_trained_again(value, tiny, runs):
    first = train(config(trainable="bn"), runs, dataset=tiny)
    path = Path(first.run_dir) / results.RESULT
    results.write_json(path, {**results.read_json(path), "test_accuracy": value})
    again = train(config(trainable="bn"), runs, dataset=tiny)
    assert not again.cached and again.test_accuracy == first.test_accuracy
    assert json.loads(json.dumps(again.to_dict(), allow_nan=False))  # JSON, no NaN


@pytest.mark.parametrize("resume_with", [dict(device="cpu"), dict(progress=True), dict(time_limit=3600)])
def test_resumed_with_another_non_address_flag_is_bit_identical(resume_with, tiny, tmp_path):
    """Every flag left out of the address (device, progress, time limit) may change between a
    stop and a resume: the run ends bit for bit as an uninterrupted one (compile is left out here:
    it needs a compiler and minutes on a CPU)."""
    c = config(trainable="bn,shortcut,output", epochs=3, device="auto")
    whole = train(c, tmp_path / "whole", dataset=tiny)

    def stop_in_epoch_2(row):
        if row["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(c, tmp_path / "cut", dataset=tiny, on_epoch=stop_in_epoch_2)
    device = {k: v for k, v in resume_with.items() if k == "device"}
    resumed = train(c.replace(**device), tmp_path / "cut", dataset=tiny,
                    **{k: v for k, v in resume_with.items() if k != "device"})
    assert resumed.resumed_from_epoch == 1 and Path(resumed.run_dir).name == Path(whole.run_dir).name
    assert_same_state(final_state(whole), final_state(resumed))


def test_a_time_limit_shorter_than_a_measured_epoch_is_refused(tiny, runs, monkeypatch):
    c = config(trainable="bn", epochs=2)
    folder = stopped_after_one_epoch(c, runs, tiny, monkeypatch)  # its first epoch was kept
    with pytest.raises(ConfigError, match="shorter than one epoch"):
        train(c, runs, dataset=tiny, time_limit=1e-6, refuse_unfit=True)
    assert results.load_torch(folder / results.CHECKPOINT)["epoch"] == 1  # nothing lost


def test_ctrl_c_during_train_exits_130_with_one_line_and_resumes(tmp_path, monkeypatch, capsys):
    from bnlib import train as train_module
    from bnlib.cli import main

    args = ["train", "--model", "resnet-8", "--epochs", "2", "--data", "synthetic", "--trainable", "bn",
            "--runs-dir", str(tmp_path), "--no-progress"]
    real = train_module._run_epoch

    def interrupted(model, optimizer, ds, configs, epoch, progress):
        if epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C in the second epoch
        return real(model, optimizer, ds, configs, epoch, progress)

    monkeypatch.setattr(train_module, "_run_epoch", interrupted)
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "bnlib: interrupted; run the same command again to resume" and "Traceback" not in "".join(err)
    monkeypatch.undo()
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["resumed_from_epoch"] == 1
