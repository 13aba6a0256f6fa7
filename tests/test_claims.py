"""bnlib.claims: the scoreboard of the paper's claims beside ours, on a store written as plain
files (``tests/stores.py``), Figure 7's curves included."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnlib import analysis, book, claims, results
from bnlib.plan import PROFILES, Plan


def test_scoreboard_has_every_claim_and_computes_ours(store):
    runs = results.load(store)
    board = claims.scoreboard(runs)
    assert len(board) == len(claims.load_claims()) and set(board["holds"]) <= {"yes", "no", "not run"}
    # ResNet-14 BN-only is in this store: its claim gets our mean, the scale and the data label
    row = board[board["id"] == "bn-14"].iloc[0]
    expected = runs[(runs["model"] == "resnet-14") & (runs["trainable"] == "bn")]["test_accuracy"].mean()
    assert row["ours"] == pytest.approx(expected, abs=1e-3)
    assert "1 epochs" in row["scale"] and "synthetic" in row["scale"] and "2 seed(s)" in row["scale"]
    gap = board[board["id"] == "bnso-gain-110"].iloc[0]
    assert gap["holds"] == "not run"


def test_clamping_claims_read_the_stored_curves(store):
    runs = results.load(store)
    bn14 = runs[(runs["model"] == "resnet-14") & (runs["trainable"] == "bn")]
    curves = [analysis.clamp_curve(d, None) for d in bn14["run_dir"]]  # as stored in each run folder
    board = claims.scoreboard(runs).set_index("id")

    def at(curve, keep, threshold):
        return curve[(curve["keep"] == keep) & np.isclose(curve["threshold"], threshold)]["test_accuracy"].iloc[0]

    binarised = np.mean([at(c, "one", 0.01) for c in curves])
    dropped = np.mean([at(c, "value", 0.0) - at(c, "value", 0.01) for c in curves])
    assert board.loc["binarize-bn-14", "ours"] == pytest.approx(binarised, abs=1e-3)
    assert board.loc["clamp-001-bn-14", "ours"] == pytest.approx(dropped, abs=1e-3)


def test_trend_claims_hold_by_sign(store, tmp_path, monkeypatch):
    runs = results.load(store)
    board = claims.scoreboard(runs).set_index("id")
    r14 = runs[runs["model"] == "resnet-14"]
    gain = (r14[r14["trainable"] == "bn,shortcut,output"]["test_accuracy"].mean()
            - r14[r14["trainable"] == "bn"]["test_accuracy"].mean())
    assert board.loc["bnso-gain-14", "ours"] == pytest.approx(gain, abs=1e-3)
    assert board.loc["bnso-gain-14", "holds"] == ("yes" if gain > 0 else "no")
    assert board.loc["bnso-gain-14", "holds if"] == "ours > 0"
    bn = runs[runs["trainable"] == "bn"].groupby("model")["test_accuracy"].mean()
    slope = analysis.doubling_slope(pd.Series([analysis.batchnorm_parameters(m) for m in bn.index]), bn.reset_index(drop=True))[0]
    assert board.loc["depth-helps-bn", "ours"] == pytest.approx(slope, abs=1e-3)
    assert board.loc["width-helps-bn", "holds"] == "not run"  # no wrn-* networks in this store
    assert board.loc["bn-14", "holds if"] == "within ±2 points of the paper"
    assert board.loc["gamma-001-bn-14", "holds if"] == "within ±5 points of the paper"  # a fraction's 0.05
    assert board.loc["slope-ratio", "holds if"] == "within ±0.10 of the paper"
    assert board.loc["bn-init-ones", "holds if"] == "within ±1 point of the paper"
    for other in ("cpu", "paper"):  # this store alone: other scales have their own test (test_book)
        monkeypatch.setitem(PROFILES, other, dataclasses.replace(PROFILES[other], runs_dir=str(tmp_path / "none")))
    plan = Plan.from_parameters("smoke", runs_dir=str(store))
    chapter = book.paper_vs_ours(plan, ("Figure 7",), ids="beta-one")
    expected = claims.load_claims().query("figure == 'Figure 7' or id.str.contains('beta-one')", engine="python")["id"]
    own = chapter.xs("smoke", level="results")  # this store's rows (other scales: their own test)
    assert list(own.index) == list(expected) and own.loc["clamp-001-bn-14", "paper"] == "0"


def test_scoreboard_gives_ours_seed_by_seed(store):
    runs = results.load(store)
    board = claims.scoreboard(runs).set_index("id")

    def per_seed(claim_id):
        values, _, held = board.loc[claim_id, "per seed"].partition(" (holds in ")
        return [float(v) for v in values.split(", ")], held.rstrip(")")

    def accuracy(mode, seed):
        return runs[(runs["model"] == "resnet-14") & (runs["trainable"] == mode) & (runs["seed"] == seed)]["test_accuracy"].iloc[0]

    values, held = per_seed("bn-14")  # a value claim: each seed's accuracy, judged as the mean is
    assert values == pytest.approx([accuracy("bn", 0), accuracy("bn", 1)], abs=0.05)
    assert held == f"{sum(abs(v - 48) <= 2 for v in values)} of 2"
    values, held = per_seed("bnso-gain-14")  # a gap pairs the runs of one seed
    gaps = [accuracy("bn,shortcut,output", s) - accuracy("bn", s) for s in (0, 1)]
    assert values == pytest.approx(gaps, abs=0.05) and held == f"{sum(g > 0 for g in gaps)} of 2"
    assert len(per_seed("depth-helps-bn")[0]) == 2  # resnet-8 and resnet-14 in both seeds
    # a seed without every network of the mean's slope is left out; one seed alone says nothing more
    one_seed_less = runs[~((runs["model"] == "resnet-8") & (runs["seed"] == 1))]
    assert claims.scoreboard(one_seed_less).set_index("id").loc["depth-helps-bn", "per seed"] == ""
    assert board.loc["bn-110", "per seed"] == ""  # not run


def test_each_tolerance_is_set_against_the_seeds_spread(store):
    """The review of claims.csv's tolerances: for every value claim whose experiment has several
    seeds in a store, the range of ours across those seeds, in the claim's units, and whether
    the tolerance is wider than that range."""
    runs = results.load(store)
    review = claims.tolerance_review({"synthetic": runs})
    assert len(review) and set(review["seeds"]) == {2} and (review["store"] == "synthetic").all()
    bn = review.set_index("id").loc["bn-14"]
    accuracies = runs[(runs["model"] == "resnet-14") & (runs["trainable"] == "bn")]["test_accuracy"]
    assert abs(bn["seed range"] - (accuracies.max() - accuracies.min())) < 1e-6  # points, from the runs
    assert bn["tolerance wider than the range"] == ("yes" if 2.0 > bn["seed range"] else "no")
    assert "within" in bn["rule"] and not set(review["id"]) & set(claims.load_claims().query("holds_if != 'within'")["id"])


def test_a_stores_scoreboard_is_computed_again_when_a_curve_or_run_changes(store, tmp_path, monkeypatch):
    import shutil

    copy = Path(shutil.copytree(store, tmp_path / "store"))
    computed = []
    real = claims.scoreboard
    monkeypatch.setattr(claims, "scoreboard", lambda runs, *a: computed.append(len(runs)) or real(runs, *a))
    board = claims.of_store(copy)
    assert board.equals(real(results.load(copy)))
    board.loc[0, "ours"] = -5.0  # the caller's own copy
    assert claims.of_store(copy).equals(real(results.load(copy))) and len(computed) == 1

    bn14 = results.load(copy).query("model == 'resnet-14' and trainable == 'bn'")["run_dir"]
    for run_dir in bn14:
        (Path(run_dir) / results.CLAMPING).unlink()  # Figure 7's curves gone: the claim has no answer
    assert claims.of_store(copy).set_index("id").loc["binarize-bn-14", "holds"] == "not run"
    assert len(computed) == 2
    for run_dir in bn14:
        shutil.rmtree(run_dir)  # the runs gone: ResNet-14 BN-only is not run
    assert claims.of_store(copy).set_index("id").loc["bn-14", "holds"] == "not run"
