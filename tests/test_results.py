"""The results store's address: one function, spelling-independent, stable under new fields."""

import json

import pytest

from bnlib import results
from bnlib.config import RunConfig


def config(**values):
    return RunConfig.from_flat(**{"model": "resnet-8", "epochs": 1, "data": "synthetic", **values})


def test_the_address_names_the_network_and_hashes_what_is_computed():
    a = results.address(config(), "f00d")
    assert a.startswith("resnet-8_") and len(a.split("_")[1]) == 12
    assert results.address(config(seed=1), "f00d") != a
    assert results.address(config(), "beef") != a  # another data set is another run


@pytest.mark.parametrize("same", [
    dict(trainable="all"), dict(trainable="output,shortcut,conv,bn"),  # the same tensors train
    dict(model="WRN-8-1"), dict(model=" ResNet-8 "),  # one name per network
    dict(device="cpu"), dict(compile="default"),  # where and how, not what
    dict(data="/somewhere/else/synthetic"),  # the data set is its fingerprint, not its path
    dict(epochs=1.0), dict(lr=0.1),  # a number of another type
])
def test_what_does_not_change_a_run_does_not_move_it(same):
    assert results.address(config(**same), "f00d") == results.address(config(), "f00d")


def test_the_memory_layout_is_part_of_the_address_and_moves_no_stored_run():
    # channels-last rounds differently from NCHW: another layout is another run
    assert results.address(config(channels_last=False), "f00d") != results.address(config(), "f00d")
    assert results.address(config(channels_last=True), "f00d") == results.address(config(), "f00d")


def test_a_mode_is_the_set_of_tensors_it_trains():
    assert results.address(config(trainable="bn,shortcut,output"), "f") == \
        results.address(config(trainable="output,shortcut,gamma,beta"), "f")
    assert results.address(config(trainable="bn"), "f") != results.address(config(trainable="gamma"), "f")


def test_stored_configs_name_their_data_without_a_path():
    assert results.data_name("/home/someone/data/cifar10-jpeg.tar.gz") == "cifar10-jpeg.tar.gz"
    assert results.data_name("relative/folder/") == "folder"
    assert results.data_name("cifar10") == "cifar10" and results.data_name("synthetic") == "synthetic"
    record = results.config_record(config(data="/x/y/copy.tar.gz"), {"data_fingerprint": "f"})
    assert record["data"] == "copy.tar.gz" and record["data_fingerprint"] == "f" and record["model"] == "resnet-8"


def test_find_matches_by_address_with_or_without_a_fingerprint(tmp_path):
    wanted, other = config(trainable="bn"), config(trainable="all")
    for fingerprint in ("f1", "f2"):
        folder = results.run_dir(tmp_path, wanted, fingerprint)
        folder.mkdir()
        results.write_json(folder / results.CONFIG, results.config_record(wanted, {"data_fingerprint": fingerprint}))
        results.write_json(folder / results.RESULT, {"status": "complete", "test_accuracy": 50.0,
                                                     "data_fingerprint": fingerprint})
    found, missing = results.find(tmp_path, [wanted, other], "f2")
    assert list(found["run_dir"]) == [str(results.run_dir(tmp_path, wanted, "f2"))] and missing == [other]
    found, missing = results.find(tmp_path, [wanted])  # any data set the store holds
    assert len(found) == 1 and not missing
    found, missing = results.find(tmp_path / "empty", [wanted])
    assert found.empty and missing == [wanted]


# --------------------------------------------------------------------------- damaged stores

def write_run(runs_dir, seed, status="complete"):
    c = config(trainable="bn", seed=seed)
    folder = results.run_dir(runs_dir, c, "f1")
    folder.mkdir(parents=True)
    results.write_json(folder / results.CONFIG, results.config_record(c, {"data_fingerprint": "f1"}))
    row = {"epoch": 1, "lr": 0.1, "train_loss": 2.0, "train_accuracy": 20.0, "test_loss": 2.0,
           "test_accuracy": 21.0 + seed, "seconds": 1.0, "images_per_s": 100.0}
    results.write_csv(folder / results.METRICS, [row], results.METRIC_COLUMNS)
    if status:
        results.write_json(folder / results.RESULT, {"status": status, "test_accuracy": row["test_accuracy"],
                                                     "epochs_completed": 1, "data_fingerprint": "f1"})
    return folder


@pytest.mark.parametrize("name, content", [
    (results.RESULT, "{not json"), (results.RESULT, "[1, 2]"), (results.RESULT, '{"status": "maybe"}'),
    (results.CONFIG, ""), (results.CONFIG, "\x00\x01"),
])
def test_one_bad_file_never_hides_the_rest(name, content, tmp_path, caplog):
    folders = [write_run(tmp_path, seed) for seed in range(3)]
    (folders[1] / name).write_text(content)
    with caplog.at_level("WARNING", logger="bnlib"):
        table = results.load(tmp_path)
    assert sorted(table["seed"]) == [0, 2]
    [warning] = [r.getMessage() for r in caplog.records]
    assert str(folders[1] / name) in warning and "\n" not in warning


@pytest.mark.parametrize("content, why", [
    ("epoch,lr\nbar,1\n", "lacks the column"),
    ("epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_s\nbar,1,1,1,1,1,1,1\n",
     "not numbers"),
    ("epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_s\n1,1,foo,1,1,1,1,1\n",
     "not numbers"),
    ("epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_s\n3,1,1,1,1,1,1,1\n",
     "epochs 1, 2, 3"),
    ("", "not a CSV"),
])
def test_garbage_metrics_are_refused_naming_the_file(content, why, tmp_path, caplog):
    folder = write_run(tmp_path, 0)
    write_run(tmp_path, 1)
    (folder / results.METRICS).write_text(content)
    with pytest.raises(results.Unreadable, match=why) as error:
        results.load_metrics_of(folder)
    assert error.value.path == folder / results.METRICS
    with caplog.at_level("WARNING", logger="bnlib"):
        epochs = results.load_metrics(tmp_path)
    assert list(epochs["seed"]) == [1] and "metrics.csv" in caplog.records[0].getMessage()


def test_a_diverged_runs_nan_losses_are_numbers(tmp_path):
    folder = write_run(tmp_path, 0, status="diverged")
    (folder / results.METRICS).write_text(
        "epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_s\n1,0.1,nan,10,nan,10,1,1\n")
    assert results.load_metrics_of(folder)["train_loss"].isna().all()


def test_check_lists_every_run_and_exits_1_on_an_unreadable_one(tmp_path, capsys):
    import json

    import torch

    from bnlib.cli import main

    write_run(tmp_path, 0)
    interrupted = write_run(tmp_path, 1, status=None)
    results.save_torch(interrupted / results.CHECKPOINT, {"epoch": 1, "model": {}, "metrics": []})
    stopped = write_run(tmp_path, 2, status=None)
    results.save_torch(stopped / results.CHECKPOINT, {"epoch": 1, "model": {}, "metrics": []})
    (stopped / results.EVENTS).write_text("2026-01-01T00:00:00+00:00 stop epoch=1 time limit pid=1 host=h\n")
    fresh = write_run(tmp_path, 3, status=None)
    (tmp_path / "notes").mkdir()  # not a run folder: ignored
    assert main(["check", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary == {"runs": 4, "complete": 1, "diverged": 0, "stopped": 1, "interrupted": 2, "training": 0,
                       "unreadable": 0, "runs_dir": str(tmp_path)}
    (fresh / results.CHECKPOINT).write_bytes(b"\x80garbage")
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1])["unreadable"] == 1
    assert any(fresh.name in line and "unreadable" in line and "checkpoint.pt" in line for line in out)
    assert main(["check", str(tmp_path / "nowhere")]) == 2


def test_weights_load_without_running_code(tmp_path):
    """A crafted pickle in a checkpoint or weights file runs nothing: torch loads with
    weights_only, and the file is reported as unreadable."""
    import pickle

    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"epoch": 1, "model": Exploit()}))
    with pytest.raises(Exception):
        results.load_torch(path)
    assert not marker.exists()


def test_set_aside_keeps_the_file_under_a_new_name(tmp_path, caplog):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"x")
    with caplog.at_level("WARNING", logger="bnlib"):
        kept = results.set_aside(path, "cannot be read")
    assert not path.exists() and kept.read_bytes() == b"x" and kept.name.startswith("checkpoint.pt.damaged-")
    assert str(path) in caplog.records[0].getMessage() and kept.name in caplog.records[0].getMessage()


# --------------------------------------------------------------------------- a run folder proves what it is

def check_states(runs_dir):
    return {s["run"]: s for s in results.check(runs_dir)}


def test_a_renamed_run_folder_is_another_runs_and_read_as_unreadable(tmp_path, caplog):
    first = write_run(tmp_path, 0)
    seed_1 = results.run_dir(tmp_path, config(trainable="bn", seed=1), "f1")
    first.rename(seed_1)  # seed 0's files under seed 1's address
    with caplog.at_level("WARNING", logger="bnlib"):
        assert results.load(tmp_path).empty
    assert "config of run" in caplog.records[0].getMessage()
    state = check_states(tmp_path)[seed_1.name]
    assert state["state"] == "unreadable" and f"config of run {first.name}" in state["detail"]
    found, missing = results.find(tmp_path, [config(trainable="bn", seed=1)], "f1")
    assert found.empty and len(missing) == 1


def test_a_config_copied_from_another_run_relabels_nothing(tmp_path):
    seed_0, seed_1 = write_run(tmp_path, 0), write_run(tmp_path, 1)
    (seed_1 / results.CONFIG).write_bytes((seed_0 / results.CONFIG).read_bytes())
    assert list(results.load(tmp_path)["run_dir"]) == [str(seed_0)]
    assert list(results.load_metrics(tmp_path)["run_dir"]) == [str(seed_0)]
    assert check_states(tmp_path)[seed_1.name]["state"] == "unreadable"


@pytest.mark.parametrize("key, value", [
    ("test_accuracy", 250), ("test_accuracy", float("nan")), ("test_accuracy", -5), ("test_accuracy", "abc"),
    ("test_accuracy", None), ("test_accuracy", True), ("train_accuracy", 101), ("test_loss", -1.0),
    ("test_loss", float("inf")), ("epochs_completed", 7), ("epochs_completed", 0.5),
])
def test_result_values_no_run_can_have_are_unreadable(key, value, tmp_path, capsys, caplog):
    from bnlib.cli import main

    bad, good = write_run(tmp_path, 0), write_run(tmp_path, 1)
    result = results.read_json(bad / results.RESULT)
    results.write_json(bad / results.RESULT, {**result, key: value})
    with caplog.at_level("WARNING", logger="bnlib"):
        assert list(results.load(tmp_path)["run_dir"]) == [str(good)]
    assert str(bad / results.RESULT) in caplog.records[0].getMessage()
    state = check_states(tmp_path)[bad.name]
    assert state["state"] == "unreadable" and state["detail"].startswith(str(bad / results.RESULT))
    assert "checkpoint" not in state["detail"]
    assert main(["check", str(tmp_path)]) == 1
    json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # valid JSON: no NaN printed


HEADER = "epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_s\n"


@pytest.mark.parametrize("rows, why", [
    ("1,0.1,2,20,2,250,1,1\n", "test_accuracy 250"),
    ("1,0.1,2,-3,2,20,1,1\n", "train_accuracy -3"),
    ("1,0.1,-2,20,2,20,1,1\n", "train_loss -2"),
    ("1,0.1,nan,20,2,20,1,1\n2,0.1,2,20,2,20,1,1\n", "train_loss nan at epoch 1"),  # only the last may diverge
    ("1,0.1,2,20,inf,20,1,1\n2,0.1,2,20,2,20,1,1\n", "test_loss inf at epoch 1"),
    ("1,0,2,20,2,20,1,1\n", "lr 0"),
    ("1,0.1,2,20,2,20,-1,1\n", "seconds -1"),
])
def test_metrics_values_no_run_can_have_are_unreadable(rows, why, tmp_path):
    folder = write_run(tmp_path, 0, status=None)
    (folder / results.METRICS).write_text(HEADER + rows)
    with pytest.raises(results.Unreadable, match=why):
        results.load_metrics_of(folder)


def test_check_reads_the_lock_of_a_run_being_written(tmp_path, capsys):
    import fcntl

    from bnlib.cli import main

    write_run(tmp_path, 0)
    starting = results.run_dir(tmp_path, config(trainable="bn", seed=1), "f1")
    starting.mkdir()  # what a trainer has written when it has just taken the lock: nothing else
    with open(starting / results.LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert check_states(tmp_path)[starting.name]["state"] == "training"
        assert main(["check", str(tmp_path)]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["training"] == 1
    assert check_states(tmp_path)[starting.name]["state"] == "unreadable"  # let go, and still empty


def test_an_unchanged_store_is_read_once_and_a_changed_one_again(tmp_path, caplog, monkeypatch):
    folders = [write_run(tmp_path, seed) for seed in range(2)]
    reads = []
    real_row = results._row
    monkeypatch.setattr(results, "_row", lambda folder: reads.append(folder.name) or real_row(folder))
    first = results.load(tmp_path)
    first.loc[0, "test_accuracy"] = -1.0  # the caller's own copy: the next call does not see it
    again = results.load(tmp_path)
    assert len(reads) == 2 and -1.0 not in set(again["test_accuracy"]) and len(again) == 2  # read once

    write_run(tmp_path, 2)  # a run added
    assert sorted(results.load(tmp_path)["seed"]) == [0, 1, 2]
    result = json.loads((folders[0] / results.RESULT).read_text())
    results.write_json(folders[0] / results.RESULT, {**result, "test_accuracy": 12.5})  # a result rewritten
    assert 12.5 in set(results.load(tmp_path)["test_accuracy"])
    (folders[1] / results.CONFIG).write_text("")  # a file damaged: warned of at every call
    for _ in range(2):
        caplog.clear()
        with caplog.at_level("WARNING", logger="bnlib"):
            assert sorted(results.load(tmp_path)["seed"]) == [0, 2]
        [warning] = [r.getMessage() for r in caplog.records]
        assert str(folders[1] / results.CONFIG) in warning
