"""The results the book ships (data/runs/<profile>/): plain files only, each run complete with
what the chapters read, labelled with its data and hardware, and part of its profile's grid."""

import dataclasses
import re
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bnlib import analysis, config as config_module, data as data_lib, results
from bnlib.config import RunConfig, TrainConfig
from bnlib.data import describe_source
from bnlib.experiments import JPEG_EPOCHS, scale_ladder
from bnlib.plan import PROFILES, Plan
from bnlib.sweep import needs_clamping, profile_grid

ROOT = Path(__file__).resolve().parents[1]
STORES = [p for p in sorted((ROOT / "data" / "runs").glob("*")) if p.is_dir()]
FINISHED = [p.parent for store in STORES for p in sorted(store.glob("*/result.json"))]
STORED = [p.parent for store in STORES for p in sorted(store.glob("*/config.json"))]


def stored_config(run: Path) -> RunConfig:
    return RunConfig.from_flat(**analysis.run_config_fields(run))


def test_every_committed_run_is_at_the_address_its_config_gives():
    """A sweep or a chapter finds a stored run by recomputing its address: a run whose folder
    name differs would be trained again, and the book would not show it."""
    assert len(STORED) >= 90
    moved = [run for run in STORED
             if results.address(stored_config(run), results.read_json(run / results.CONFIG)["data_fingerprint"])
             != run.name]
    assert not moved


def test_a_new_defaulted_field_moves_no_run(monkeypatch):
    """A field added later enters the hash only when its value differs from its default."""
    extended = dataclasses.make_dataclass(
        "TrainConfig", [("label_smoothing", float, dataclasses.field(default=0.0, metadata={"help": "", "hashed": True}))],
        bases=(TrainConfig,), frozen=True)
    monkeypatch.setattr(config_module, "CONFIG_TYPES", (*config_module.CONFIG_TYPES[:2], extended))
    assert "label_smoothing" in stored_config(STORED[0]).flat()
    for run in STORED:
        fingerprint = results.read_json(run / results.CONFIG)["data_fingerprint"]
        assert results.address(stored_config(run), fingerprint) == run.name
    config = stored_config(STORED[0])
    fingerprint = results.read_json(STORED[0] / results.CONFIG)["data_fingerprint"]
    assert results.address(config.replace(label_smoothing=0.1), fingerprint) != STORED[0].name


@pytest.mark.parametrize("name", [results.CONFIG, results.RESULT])
def test_stored_records_name_their_data_by_file_name_not_by_path(name):
    for run in STORED:
        if (run / name).is_file():
            record = results.read_json(run / name)
            assert "/" not in str(record.get("data", "")) and "/" not in record["data_source"], run


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_only_the_weights_of_small_finished_runs_are_committed():
    """Chapter 7's slider re-evaluates a few small runs (final weights, a few MB in all), and the
    paper store's long runs keep their compact state (bnlib.compact), so that a run of days
    resumes on any machine; no full checkpoint, lock or large network's full weights is committed."""
    from bnlib import compact

    tracked = subprocess.run(["git", "ls-files", "data/runs"], cwd=ROOT, capture_output=True, text=True).stdout
    binaries = [ROOT / name for name in tracked.split() if name.endswith((".pt", ".lock")) or ".damaged-" in name]
    small_weights = [p for p in binaries if p.name == results.MODEL and (p.parent / results.RESULT).is_file()
                     and p.parent.name.startswith(("resnet-14_", "resnet-32_"))]
    for p in set(binaries) - set(small_weights):
        assert p.name in (results.MODEL, results.CHECKPOINT) and p.parent.parent.name == "paper", p
        state = results.load_torch(p)
        assert compact.is_compact(state if p.name == results.MODEL else state["model"]), p
        assert p.stat().st_size < 2**20, p
    assert sum(p.stat().st_size for p in binaries) < 20 * 2**20


@pytest.mark.parametrize("run", FINISHED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_run_has_what_the_book_reads(run):
    result = json.loads((run / results.RESULT).read_text())
    assert result["status"] in ("complete", "diverged")
    assert result["hardware"] and result["torch_version"] and describe_source(result["data_source"])
    assert len(results.load_metrics_of(run)) == result["epochs_completed"]
    assert len(results.load_batchnorm(run)) > 0
    config = stored_config(run)
    if result["status"] == "complete" and needs_clamping(config):  # Figure 7 reads it
        assert len(analysis.clamp_curve(run, None)) == len(analysis.clamp_grid())


@pytest.mark.parametrize("store", STORES, ids=lambda p: p.name)
def test_a_store_holds_runs_of_its_grid_on_real_images(store):
    """data/runs/<profile> holds its profile's grid; data/runs/scale the epoch ladder and the
    JPEG-quality runs (chapter 9): every finished run is one the book asked for."""
    stored = results.load(store)
    finished = stored[stored["status"].isin(["complete", "diverged"])]
    if store.name == "scale":
        # the ladder on the copy, and its 16-epoch rungs again on each re-encoding of it: the
        # grid's runs on each data set the store holds (find picks one data set per config)
        found = pd.concat([results.find(store, scale_ladder("any"), fingerprint=f)[0]
                           for f in finished["data_fingerprint"].unique()])
        reencoded = finished[finished["data_source"].map(data_lib.reencoded)]
        assert set(reencoded["epochs"]) <= {JPEG_EPOCHS} and set(reencoded["model"]) <= {"resnet-14"}
    else:
        assert store.name in PROFILES, f"data/runs/{store.name} is not a profile's store"
        found, _ = Plan.from_parameters(store.name, runs_dir=str(store)).match(profile_grid(store.name))
    assert set(found["run_dir"]) == set(finished["run_dir"])  # nothing outside the grid
    assert all(describe_source(s).startswith("CIFAR-10") for s in finished["data_source"])


def test_no_committed_record_holds_a_path_of_the_machine_that_wrote_it():
    """Logs, job records and run records name data and stores relative to the project."""
    texts = [p for store in STORES for p in store.rglob("*") if p.suffix in (".json", ".log", ".csv", ".md")]
    assert texts
    for path in texts:
        text = path.read_text(errors="replace")
        assert not re.search(r"(/work/|/root/|/home/|/tmp/|/Users/)", text), path



def test_every_committed_run_passes_the_stores_own_checks():
    """The readers check each folder's config against its address and its values against what a
    run can have (bnlib.results.read_run_config, read_result): every committed run passes, and is
    labelled from its measured data (its fingerprint), not from its file name."""
    from bnlib.data import describe_data

    for run in STORED:
        record = results.read_run_config(run)
        results.load_metrics_of(run)
        if (run / results.RESULT).is_file():
            results.read_result(run)
        assert describe_data(record).startswith("CIFAR-10")
