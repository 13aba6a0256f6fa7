"""``python -m bnlib``: Table 1, a training run's JSON line, and one-line errors with status 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bnlib.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bnlib", *args], env=env, cwd=cwd, capture_output=True, text=True)


def test_params_prints_table1(capsys):
    assert main(["params"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 14  # header and 13 networks
    assert lines[1].split() == ["resnet-14", "2", "1", "1,120", "2,752", "650", "175,258"]
    assert lines[-1].split()[0] == "wrn-14-32"


def test_train_prints_json_last(tmp_path):
    done = run_cli("train", "--model", "resnet-8", "--trainable", "bn,shortcut,output", "--epochs", "1",
                   "--data", "synthetic", "--runs-dir", str(tmp_path / "runs"), "--bn-init", "ones-beta-one")
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["status"] == "complete" and 0 <= last["test_accuracy"] <= 100
    stored = json.loads((Path(last["run_dir"]) / "config.json").read_text())
    assert stored["bn_init"] == "ones-beta-one" and stored["trainable"] == "bn,shortcut,output"
    assert "epoch    1" in done.stderr


@pytest.mark.parametrize("args, words", [
    (["--model", "resnet-13"], "resnet-N"),
    (["--trainable", "bn,weights"], "trainable part"),
    (["--bn-init", "zeros"], "bn_init"),
    (["--feature-init", "xavier"], "feature_init"),
    (["--data", "/no/such/path"], "does not exist"),
    (["--epochs", "0"], "epochs"),
    (["--epochs", "two"], "invalid int"),
    (["--normalize", "maybe"], "true or false"),
    (["--no-such-flag", "1"], "unrecognized"),
    (["--time-limit", "90"], "invalid time limit"),  # minutes or seconds? a unit is required
    (["--time-limit", "1.5h"], "invalid time limit"),
    (["--time-limit", "30m1h"], "invalid time limit"),
    (["--time-limit", "9x"], "invalid time limit"),
    (["--time-limit", ""], "invalid time limit"),
    (["--time-limit", "9" * 400 + "s"], "longer than a year"),  # once an OverflowError traceback
    (["--time-limit", "367d"], "longer than a year"),
    (["--device", "meta"], "not supported"),  # once tracebacks deep in training
    (["--device", "mps"], "not supported"),
    (["--device", "xpu"], "not supported"),
    # values that once passed validation and failed later, leaving a junk run folder
    (["--lr", "1e308"], "lr must lie in"),
    (["--lr", "0"], "lr must lie in"),
    (["--momentum", "5"], "momentum must lie in [0, 1)"),
    (["--momentum", "1"], "momentum must lie in [0, 1)"),
    (["--weight-decay", "-1"], "weight_decay"),
    (["--seed", "99999999999999999999999"], "seed must lie in 0..4294967295"),
    (["--seed", "-1"], "seed"),
    (["--model", "wrn-14-100000"], "needs about"),  # estimated, never allocated
    (["--model", "resnet-60002"], "needs about"),
    (["--trainable=-bn"], "removes parts from nothing"),  # was read as none
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(args, words, tmp_path, capsys):
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(main(["train", "--data", "synthetic", "--runs-dir", str(runs), *args]))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and words in captured.err
    assert not runs.exists()


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("9m", 540), ("2h", 7200), ("1h30m", 5400), ("1d12h", 129600), ("1h0m5s", 3605), ("0s", 0),
])
def test_time_limits_parse(text, seconds):
    from bnlib.cli import parse_duration

    assert parse_duration(text) == seconds


def test_train_stopped_by_the_time_limit_exits_3_and_resumes(tmp_path, capsys):
    from bnlib.cli import EXIT_STOPPED

    args = ["train", "--model", "resnet-8", "--trainable", "bn", "--epochs", "1", "--data", "synthetic",
            "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    assert EXIT_STOPPED == 3
    assert main([*args, "--time-limit", "0s"]) == EXIT_STOPPED
    captured = capsys.readouterr()
    stopped = json.loads(captured.out.strip().splitlines()[-1])
    assert stopped["status"] == "stopped" and stopped["epochs_completed"] == 0
    assert "run the same command again to resume" in captured.err
    assert not (Path(stopped["run_dir"]) / "result.json").exists()
    assert main([*args, "--time-limit", "1h"]) == 0  # a limit that fits: trained to the end
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert done["status"] == "complete" and done["run_dir"] == stopped["run_dir"]


def test_bench_on_a_missing_gpu_exits_2_with_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = tmp_path / "bench.jsonl"
    assert main(["bench", "--model", "resnet-8", "--device", "cuda", "--steps", "1", "--rounds", "1",
                 "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().count("\n") == 0 and "no CUDA GPU" in captured.err
    assert not out.exists()


def test_bad_input_from_a_real_process(tmp_path):
    done = run_cli("train", "--model", "vgg-16", "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "resnet-N" in done.stderr


def test_bench_prints_and_stores_the_comparison(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    assert main(["bench", "--model", "resnet-8", "--trainable", "bn", "--steps", "2", "--rounds", "1",
                 "--out", str(out)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["images_per_s"] > 0 and last["reference_images_per_s"] > 0
    assert last["ratio"] == pytest.approx(last["images_per_s"] / last["reference_images_per_s"], rel=1e-2)
    assert 0 < last["fraction_of_matmul_rate"] < 1 and last["training_gflops_per_image"] > 0
    stored = [json.loads(line) for line in out.read_text().splitlines()]
    assert stored[-1]["torch_version"] and stored[-1]["hardware"] and stored[-1]["date"]


def test_bench_rejects_bad_input(capsys):
    assert main(["bench", "--model", "resnet-7"]) == 2
    assert "resnet-N" in capsys.readouterr().err


def test_flop_count_of_resnet14():
    """Forward FLOPs of ResNet-14 are about 2 x 27.9M multiply-adds; a BN-only step adds the
    backward through the activations, an all-parameters step also the weight gradients."""
    from bnlib.bench import training_flops_per_image
    from bnlib.config import RunConfig

    bn = training_flops_per_image(RunConfig.from_flat(model="resnet-14", trainable="bn"))
    full = training_flops_per_image(RunConfig.from_flat(model="resnet-14", trainable="all"))
    assert 1.5 * 55e6 < bn < 2.5 * 55e6 and 2.5 * 55e6 < full < 3.5 * 55e6


@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_a_runs_directory_that_cannot_hold_runs_exits_2(kind, tmp_path, capsys, monkeypatch):
    if kind == "file":
        target = tmp_path / "a-file"
        target.write_text("not a folder")
    else:  # a place this process cannot write (root ignores permissions: fake the failure)
        import tempfile

        target = tmp_path / "read-only"

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    assert main(["train", "--data", "synthetic", "--epochs", "1", "--model", "resnet-8",
                 "--runs-dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "runs directory" in err and str(target) in err


def test_a_full_disk_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    """A write that fails (ENOSPC) ends the command with one line naming the file; the previous
    checkpoint stays intact, so the run resumes once there is room."""
    import errno

    from bnlib import results

    runs = tmp_path / "runs"
    args = ["train", "--data", "synthetic", "--model", "resnet-8", "--epochs", "2", "--runs-dir", str(runs)]
    real_save = results.save_torch
    saves = []

    def fill_up(path, payload):
        saves.append(path)
        if len(saves) == 2:  # the checkpoint of epoch 2: the disk is full
            with open(path.with_name(path.name + ".tmp"), "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(path.with_name(path.name + ".tmp")))
        real_save(path, payload)

    monkeypatch.setattr(results, "save_torch", fill_up)
    assert main(args) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("epoch ")]
    assert len(err) == 1 and "No space left on device" in err[0] and "checkpoint.pt" in err[0]
    [run] = results.run_dirs(runs)
    assert results.load_torch(run / results.CHECKPOINT)["epoch"] == 1  # the previous one, intact
    monkeypatch.setattr(results, "save_torch", real_save)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["resumed_from_epoch"] == 1



def test_clamp_re_evaluates_a_run_as_figure_7_does(trained_run, synthetic, capsys, tmp_path):
    from bnlib import analysis, results

    for keep, flags in (("value", []), ("mean", ["--binarize", "mean"])):
        assert main(["clamp", str(trained_run), "--threshold", "0.3", "--data", "synthetic", *flags]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        [expected] = analysis.clamp_curve(trained_run, synthetic, grid=[(keep, 0.3)]).to_dict("records")
        assert out["keep"] == keep and out["test_accuracy"] == expected["test_accuracy"]
        assert out["fraction_clamped"] == pytest.approx(expected["fraction_clamped"])
    (trained_run / results.MODEL).rename(tmp_path / "kept.pt")
    assert main(["clamp", str(trained_run), "--threshold", "0.3", "--data", "synthetic"]) == 2
    assert "model.pt" in capsys.readouterr().err
    (tmp_path / "kept.pt").rename(trained_run / results.MODEL)
    other = tmp_path / "other-q50.tar.gz"
    assert main(["data", "reencode", "--quality", "50", "synthetic", str(other)]) == 0
    capsys.readouterr()
    assert main(["clamp", str(trained_run), "--threshold", "0.3", "--data", str(other)]) == 2
    assert "was trained on data" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["no config", "foreign config", "garbage config", "no weights", "garbage weights",
                                    "foreign weights", "not finished"])
def test_clamp_on_a_damaged_or_foreign_run_is_one_line(damage, trained_run, trained_store, capsys):
    from bnlib import results

    other = next(p for p in results.run_dirs(trained_store) if p.name != trained_run.name)
    if damage == "no config":
        (trained_run / results.CONFIG).unlink()
    elif damage == "foreign config":
        (trained_run / results.CONFIG).write_bytes((other / results.CONFIG).read_bytes())
    elif damage == "garbage config":
        (trained_run / results.CONFIG).write_text("{cut")
    elif damage == "no weights":
        (trained_run / results.MODEL).unlink()
    elif damage == "garbage weights":
        (trained_run / results.MODEL).write_bytes(os.urandom(2000))
    elif damage == "foreign weights":  # another network's final weights
        import torch

        torch.save({"conv.weight": torch.zeros(3)}, trained_run / results.MODEL)
    else:
        (trained_run / results.RESULT).unlink()
    assert main(["clamp", str(trained_run), "--threshold", "0.01", "--data", "synthetic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bnlib: error: ")
