"""The results the book ships (data/runs/<profile>/): plain files only, each run complete with
what the chapters read, labelled with its data and hardware, and part of its profile's grid."""

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from bnlib import analysis, results, train
from bnlib.config import RunConfig
from bnlib.data import describe_source
from bnlib.profiles import PROFILES, Plan
from bnlib.sweep import needs_clamping, profile_grid

ROOT = Path(__file__).resolve().parents[1]
STORES = [p for p in sorted((ROOT / "data" / "runs").glob("*")) if p.is_dir()]
FINISHED = [p.parent for store in STORES for p in sorted(store.glob("*/result.json"))]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_no_weights_or_checkpoints_are_committed():
    tracked = subprocess.run(["git", "ls-files", "data/runs"], cwd=ROOT, capture_output=True, text=True).stdout
    assert not [name for name in tracked.split() if name.endswith((".pt", ".lock"))]


@pytest.mark.parametrize("run", FINISHED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_run_has_what_the_book_reads(run):
    result = json.loads((run / results.RESULT).read_text())
    assert result["status"] in ("complete", "diverged")
    assert result["hardware"] and result["torch_version"] and describe_source(result["data_source"])
    assert len(results.load_metrics_of(run)) == result["epochs_completed"]
    assert len(results.load_batchnorm(run)) > 0
    config = RunConfig.from_flat(**analysis.run_config_fields(run))
    # stored at the address its config gives, so that a sweep finds it instead of training it again
    assert train.locate(config, SimpleNamespace(fingerprint=result["data_fingerprint"]), run.parent) == run
    if result["status"] == "complete" and needs_clamping(config):  # Figure 7 reads it
        assert len(analysis.clamp_curve(run, None)) == len(analysis.clamp_grid())


@pytest.mark.parametrize("store", STORES, ids=lambda p: p.name)
def test_a_profile_store_holds_runs_of_its_grid_on_real_images(store):
    assert store.name in PROFILES, f"data/runs/{store.name} is not a profile's store"
    plan = Plan.from_parameters(store.name, runs_dir=str(store))
    found, _ = plan.match(profile_grid(store.name))
    stored = results.load(store)
    finished = stored[stored["status"].isin(["complete", "diverged"])]
    assert set(found["run_dir"]) == set(finished["run_dir"])  # nothing outside the grid
    assert all(describe_source(s).startswith("CIFAR-10") for s in finished["data_source"])
