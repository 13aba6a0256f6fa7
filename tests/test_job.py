"""The prepared GPU job (scripts/gpu-job.py, bnlib.job): every step run on the CPU with a tiny
profile, and the two choices it makes alone, the order of training and what the archive holds."""

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bnlib import RunConfig, compact, job, results

ROOT = Path(__file__).resolve().parents[1]


def run_config(model, trainable, seed=0, epochs=1, **fields):
    return RunConfig.from_flat(model=model, trainable=trainable, seed=seed, epochs=epochs, data="synthetic", **fields)


def claims_table(*rows):
    """Claims as data/paper/claims.csv writes them (only the columns the order reads)."""
    columns = ("id", "quantity", "network", "trainable", "bn_init", "reference")
    return pd.DataFrame([dict(zip(columns, row)) for row in rows])


def describe(order):
    return [(p.config.model.model, p.config.train.trainable, p.config.train.seed) for p in order]


# --------------------------------------------------------------------------- e: the order

PRICES = {("resnet-8", "all"): 10.0, ("resnet-8", "bn"): 1.0, ("resnet-8", "none"): 1.0,
          ("resnet-14", "bn"): 100.0, ("resnet-8", "bn,shortcut,output"): 0.5}
RUNS = [run_config(m, t, s) for (m, t) in PRICES for s in (0, 1)]
CLAIMS = claims_table(
    ("all-acc", "accuracy", "resnet-8", "all", "uniform", ""),
    ("all-gamma", "gamma_mean", "resnet-8", "all", "uniform", ""),
    ("none-acc", "accuracy", "resnet-8", "none", "uniform", ""),
    ("bn-gap", "accuracy_gap", "resnet-8", "bn", "uniform", "trainable=none"),
    ("deep-bn", "accuracy", "resnet-14", "bn", "uniform", ""),
    ("far", "accuracy", "resnet-110", "all", "uniform", ""),  # not among the runs: passed over
)
SERIES = {"deep": ("resnet-8", "resnet-14"), "wide": ("resnet-8",)}


def price(config):
    return PRICES[config.model.model, config.train.trainable] * (1 + config.train.seed)


def test_order_answers_the_most_claims_per_second_seed_by_seed():
    order = job.claim_order(RUNS, CLAIMS, price, lambda c: False, SERIES)
    assert describe(order) == [
        # none answers one claim for 1 s; then bn the gap for 1 s; All two claims for 10 s
        ("resnet-8", "none", 0), ("resnet-8", "bn", 0), ("resnet-8", "all", 0), ("resnet-14", "bn", 0),
        # seed 1 of every claim after seed 0 of all of them, though cheaper than ResNet-14's
        ("resnet-8", "none", 1), ("resnet-8", "bn", 1), ("resnet-8", "all", 1), ("resnet-14", "bn", 1),
        # answering no claim: last, cheapest first
        ("resnet-8", "bn,shortcut,output", 0), ("resnet-8", "bn,shortcut,output", 1)]
    answers = {describe([p])[0]: p.answers for p in order}
    assert answers["resnet-8", "all", 0] == ["all-acc", "all-gamma"]
    assert answers["resnet-8", "bn", 0] == ["bn-gap"]
    assert answers["resnet-8", "none", 1] == ["none-acc (seed 1)"]
    assert answers["resnet-8", "bn,shortcut,output", 0] == []
    assert not any("far" in a for p in order for a in p.answers)
    assert [p.seconds for p in order[:2]] == [1.0, 1.0]


def test_runs_finished_or_trained_elsewhere_are_not_planned_but_count_as_there():
    elsewhere = job.parse_elsewhere("resnet-14,resnet-8:none")
    done = {("resnet-8", "all", 0)}
    order = job.claim_order(RUNS, CLAIMS, price, lambda c: describe([job.Planned(c, 0)])[0] in done or elsewhere(c),
                            SERIES)
    planned = describe(order)
    assert not any(m == "resnet-14" or t == "none" for m, t, _ in planned) and ("resnet-8", "all", 0) not in planned
    first = order[0]
    # the gap's other side (None) is trained elsewhere: BN-only alone answers it, at once
    assert describe([first]) == [("resnet-8", "bn", 0)] and first.answers == ["bn-gap"]


def test_a_slope_needs_every_network_of_its_series():
    slopes = claims_table(("depth", "depth_slope", "", "bn", "uniform", ""))
    order = job.claim_order(RUNS, slopes, price, lambda c: False, SERIES)
    answered = [p for p in order if p.answers]
    assert describe(answered) == [("resnet-14", "bn", 0), ("resnet-14", "bn", 1)]
    assert describe(order)[:2] == [("resnet-8", "bn", 0), ("resnet-14", "bn", 0)]  # cheapest of the pair first


def test_parse_elsewhere():
    elsewhere = job.parse_elsewhere(job.CPU_MEANWHILE)
    assert elsewhere(run_config("resnet-14", "all", seed=3, bn_init="ones"))
    assert elsewhere(run_config("resnet-110", "bn", seed=2))
    assert not elsewhere(run_config("resnet-110", "bn", bn_init="ones"))
    assert not elsewhere(run_config("resnet-110", "all"))
    assert job.parse_elsewhere("resnet-32:bn+shortcut+output")(run_config("resnet-32", "output,shortcut,bn"))


def test_price_is_the_estimate_of_the_epochs_a_run_lacks(synthetic):
    estimate = {"networks": {"resnet-8": {"seconds_per_epoch": {"conv-frozen": 2.0, "conv-trained": 5.0}}}}
    bn, all_ = run_config("resnet-8", "bn", epochs=10), run_config("resnet-8", "all", epochs=10)
    seconds = job.price_runs(estimate, {results.address(bn, synthetic.fingerprint): 4}, synthetic.fingerprint)
    assert (seconds(bn), seconds(all_)) == (12.0, 50.0)
    by_cost = job.price_runs(None, {}, synthetic.fingerprint)  # no estimate: the family's cost
    assert by_cost(all_) == 2 * by_cost(bn) > 0


# --------------------------------------------------------------------------- e: training in order

@pytest.fixture
def epoch_clock(monkeypatch):
    """The trainer's clock moved on 100 s by each epoch: a time limit of 150 s trains one epoch
    of each pack, then stops it (deterministic, whatever the machine's speed)."""
    from bnlib import train as train_module

    state = {"now": 0.0}
    epoch = train_module._run_epoch

    def timed(*args, **kwargs):
        rows = epoch(*args, **kwargs)
        state["now"] += 100.0
        return rows

    monkeypatch.setattr(train_module, "_clock", lambda: state["now"])
    monkeypatch.setattr(train_module, "_run_epoch", timed)
    return state


def test_training_stops_at_the_limit_keeping_compact_checkpoints(tiny, runs, epoch_clock):
    bn, all_ = run_config("resnet-8", "bn", epochs=3), run_config("resnet-8", "all", epochs=3)
    planned = [job.Planned(bn, 1e6, ["a claim"]), job.Planned(all_, 1.0)]
    counts = job.train_in_order(planned, runs, tiny, pack=1, deadline=time.time() + 150, log=lambda _: None)
    assert (counts["trained"], counts["stopped"]) == (0, 2)
    assert [r["epochs_completed"] for r in counts["runs"]] == [1, 1] and counts["runs"][0]["answers"] == ["a claim"]
    states = {r["trainable"]: results.load_torch(Path(r["run_dir"]) / results.CHECKPOINT) for r in counts["runs"]}
    assert compact.is_compact(states["bn"]["model"]) and not compact.is_compact(states["all"]["model"])


def test_resumable_only_passes_over_full_checkpoints_that_would_not_finish(tiny, runs, epoch_clock):
    bn, all_ = run_config("resnet-8", "bn", epochs=3), run_config("resnet-8", "all", epochs=3)
    planned = [job.Planned(all_, 1e6), job.Planned(bn, 1e6)]
    counts = job.train_in_order(planned, runs, tiny, pack=1, deadline=time.time() + 150, resumable_only=True,
                                log=lambda _: None)
    assert counts["passed_over"] == 1 and [r["trainable"] for r in counts["runs"]] == ["bn"]
    late = job.train_in_order(planned, runs, tiny, pack=1, deadline=time.time() - 1, log=lambda _: None)
    assert late["not_started"] == 2 and not late["runs"]


# --------------------------------------------------------------------------- f: the archive

def write(path, size=None, text=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is not None:
        path.write_text(text)
    else:
        path.write_bytes(os.urandom(size))  # incompressible, as checkpoints nearly are
    return path


def test_archive_holds_what_changed_within_its_limit_and_names_what_it_left_out(tmp_path):
    root = tmp_path / "repo"
    store, records = root / "runs", root / "records"
    old = write(store / "resnet-8_000000000000" / "metrics.csv", text="epoch\n1\n")
    before = job.snapshot([store, records])
    write(records / "job-1-report.json", text="{}")
    stopped = store / "resnet-8_aaaaaaaaaaaa"
    write(stopped / "metrics.csv", text="epoch\n1\n2\n")
    write(stopped / "checkpoint.pt", 300_000)
    finished = store / "resnet-8_bbbbbbbbbbbb"
    write(finished / "result.json", text='{"status": "complete"}')
    write(finished / "model.pt", 500_000)
    big = store / "resnet-8_cccccccccccc"
    write(big / "events.log", text="start\n")
    write(big / "checkpoint.pt", 2_000_000)
    write(store / "resnet-8_aaaaaaaaaaaa" / ".lock", text="")
    old.write_text("epoch\n1\n")  # rewritten, same content: not a change

    files = job.changed_files(before, [store, records])
    assert old.resolve() not in files and all(not f.name.endswith(".lock") for f in files)
    limit = 2**20
    manifest = job.pack_archive(files, root, tmp_path / "out" / "job.tar.gz", limit=limit)
    assert manifest["archive_bytes"] == (tmp_path / "out" / "job.tar.gz").stat().st_size <= limit
    kept = {f["path"] for f in manifest["files"]}
    assert kept == {"records/job-1-report.json", "runs/resnet-8_aaaaaaaaaaaa/metrics.csv",
                    "runs/resnet-8_aaaaaaaaaaaa/checkpoint.pt", "runs/resnet-8_bbbbbbbbbbbb/result.json",
                    "runs/resnet-8_bbbbbbbbbbbb/model.pt"}
    # the stopped run too big to come back leaves with its log: its state is its checkpoint
    assert {(m["path"], m["why"]) for m in manifest["left_out"]} == {
        ("runs/resnet-8_cccccccccccc/checkpoint.pt", "larger than the archive's limit"),
        ("runs/resnet-8_cccccccccccc/events.log", "larger than the archive's limit")}
    with tarfile.open(tmp_path / "out" / "job.tar.gz") as tar:
        tar.extractall(tmp_path / "back", filter="data")
    assert json.loads((tmp_path / "back" / "gpu-job-manifest.json").read_text())["left_out"] == manifest["left_out"]
    for name in kept:
        assert (tmp_path / "back" / name).read_bytes() == (root / name).read_bytes()

    small = job.pack_archive(files, root, tmp_path / "small.tar.gz", limit=700_000)
    assert small["archive_bytes"] <= 700_000
    assert "runs/resnet-8_bbbbbbbbbbbb/model.pt" in {m["path"] for m in small["left_out"]}  # weights last
    assert "runs/resnet-8_aaaaaaaaaaaa/checkpoint.pt" in {f["path"] for f in small["files"]}


# --------------------------------------------------------------------------- a, c: small parts

def test_environment_installs_nothing_and_names_what_is_missing():
    env = job.environment()
    assert env["torch_version"] == torch.__version__ and env["python_version"]
    with pytest.raises(RuntimeError, match="not installed: no_such_module_bnlib.*--wheels"):
        job.environment(required=("torch", "no_such_module_bnlib"))


def test_training_trusts_the_check_of_its_own_compile_mode():
    ok, off = {"passed": True, "frozen_changed": []}, {"passed": False, "frozen_changed": []}
    assert job.trusted({"variants": {"none": ok, "reduce-overhead": off}}, "none")
    assert not job.trusted({"variants": {"none": ok, "reduce-overhead": off}}, "reduce-overhead")
    changed = {"passed": False, "frozen_changed": ["bn seed 0: conv.weight"]}
    assert not job.trusted({"variants": {"none": ok, "reduce-overhead": changed}}, "none")
    assert not job.trusted(None, "none")


def test_bench_plan_and_targets():
    assert job.parse_bench_plan("resnet-14/reduce-overhead/1+8+24,resnet-866/none/1+8") == [
        ("resnet-14", "reduce-overhead", (1, 8, 24)), ("resnet-866", "none", (1, 8))]
    with pytest.raises(ValueError, match="NETWORK/COMPILE/SIZES"):
        job.parse_bench_plan("resnet-14:none")
    rows = [{"model": "resnet-14", "compile": "reduce-overhead", "runs": 1, "images_per_s": 100.0,
             "per_run_images_per_s": 100.0},
            {"model": "resnet-14", "compile": "none", "runs": 24, "images_per_s": 900.0, "per_run_images_per_s": 37.5},
            {"model": "resnet-866", "compile": "none", "runs": 1, "images_per_s": 10.0, "per_run_images_per_s": 10.0},
            {"model": "resnet-866", "compile": "none", "runs": 8, "images_per_s": 400.0, "per_run_images_per_s": 50.0}]
    got = job.targets(rows, {1: {"hours": 100.0}, 24: {"hours": 30.0}})
    assert list(got.values()) == [9.0, 0.2, 0.3]


# --------------------------------------------------------------------------- the whole job

def test_the_job_runs_every_step_on_the_cpu(tmp_path):
    """scripts/gpu-job.py as a GPU job runs it, with --device cpu, the smoke profile and a tiny
    check, bench and estimate: each step's record, the store trained but for what runs
    elsewhere, and one archive with what changed."""
    out = tmp_path / "out"
    args = [sys.executable, str(ROOT / "scripts" / "gpu-job.py"), "--budget", "4m", "--device", "cpu",
            "--profile", "smoke", "--runs-dir", str(tmp_path / "runs"), "--records", str(tmp_path / "records"),
            "--benchmarks", str(tmp_path / "benchmarks"), "--archive", str(out / "job.tar.gz"), "--pack", "2",
            "--train-time", "10s",
            "--check-compile", "none", "--bench", "resnet-8/none/1+2", "--bench-steps", "1", "--bench-rounds", "1",
            "--estimate-networks", "resnet-8", "--estimate-steps", "1", "--elsewhere", "resnet-14"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 3), done.stdout[-3000:] + done.stderr[-3000:]  # 3: runs left for the next job
    report = json.loads((tmp_path / "records" / "job-1-report.json").read_text())
    steps = report["steps"]
    assert {name: s["status"] for name, s in steps.items()} == {
        "environment": "ok", "check": "ok", "bench": "ok", "estimate": "ok", "train": "ok", "archive": "ok"}
    assert steps["check"]["result"]["passed"] and steps["check"]["result"]["runs"] == 12
    assert not steps["check"]["result"]["variants"]["none"]["frozen_changed"]
    bench = [json.loads(line) for line in next((tmp_path / "benchmarks").glob("gpu-job-1-packs-*.jsonl")).open()]
    assert [r["runs"] for r in bench] == [1, 2] and all(r["hardware"] and r["torch_version"] and r["date"]
                                                       for r in bench)
    estimates = [json.loads(line) for line in (tmp_path / "benchmarks" / "estimates.jsonl").open()]
    assert [e["pack"] for e in estimates] == [1, 2] and set(steps["estimate"]["result"]) == {"1", "2"}
    train = steps["train"]["result"]
    assert train["trained"] + train["stopped"] + train["not_started"] + train["passed_over"] == len(train["order"])
    # --train-time 10s: the first pack trains (a first epoch always starts), the last ones cannot
    assert train["trained"] + train["stopped"] >= 1 and train["not_started"] >= 1 and done.returncode == 3
    assert train["runs"][0]["answers"] and all(r["model"] != "resnet-14" for r in train["order"])
    stored = results.load(tmp_path / "runs")
    assert len(stored) == train["trained"] + train["stopped"]  # a run stopped before its first epoch has a folder
    manifest = steps["archive"]["result"]
    assert manifest["archive_bytes"] <= job.ARCHIVE_LIMIT and manifest["left_out"] == []
    with tarfile.open(out / "job.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"records/job-1-report.json", "records/job-1.log", "benchmarks/estimates.jsonl"} <= names
    assert sum(n.endswith("/result.json") for n in names) == sum(r["epochs_completed"] == 1 for r in train["runs"])
    assert "archive:" in (tmp_path / "records" / "job-1.log").read_text()
