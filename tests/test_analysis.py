"""bnlib.analysis: replicate summaries, run inventories, slopes, γ statistics and clamping.

The table functions read a store written as plain files (``tests/stores.py``); clamping
re-evaluates networks, so its tests use runs trained by the real trainer. The first test
checks that the plain store has exactly the format of a trained one."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnlib import analysis, book, results
from stores import BATCHNORM_COLUMNS, CLAMPING, write_run


def test_a_written_store_has_the_format_of_a_trained_one(trained_run, synthetic, tmp_path):
    """Same folder name (the store's address), files, keys and columns as the trainer's run:
    tests on the written store test what the trainer writes."""
    analysis.clamp_curve(trained_run, synthetic, grid=[("value", 0.0)])  # the trained run's clamping.csv
    stored = results.read_config(trained_run)
    written = write_run(tmp_path / "written", model=stored["model"], trainable=stored["trainable"],
                        seed=stored["seed"], epochs=stored["epochs"], accuracy=40.0, rng=np.random.default_rng(0),
                        description=synthetic.describe())
    assert written.name == trained_run.name
    assert {p.name for p in written.iterdir()} == {p.name for p in trained_run.iterdir()} - {
        results.MODEL, results.EVENTS, results.LOCK}  # weights only where a network is re-evaluated
    assert results.read_json(written / results.CONFIG) == results.read_json(trained_run / results.CONFIG)
    result, trained = (results.read_json(d / results.RESULT) for d in (written, trained_run))
    assert {k: type(v) for k, v in result.items()} == {k: type(v) for k, v in trained.items()}
    for name, columns in ((results.METRICS, results.METRIC_COLUMNS), (results.BATCHNORM, BATCHNORM_COLUMNS),
                          (CLAMPING, analysis.CLAMP_COLUMNS)):
        a, b = pd.read_csv(written / name), pd.read_csv(trained_run / name)
        assert list(a.columns) == list(b.columns) == list(columns), name
        assert dict(a.dtypes) == dict(b.dtypes), name
    a, b = (pd.read_csv(d / results.BATCHNORM) for d in (written, trained_run))
    assert a[["layer", "channel"]].equals(b[["layer", "channel"]])  # every BatchNorm channel, named as trained
    a, b = (pd.read_csv(d / results.METRICS) for d in (written, trained_run))
    assert a["lr"].tolist() == b["lr"].tolist() and a["epoch"].tolist() == b["epoch"].tolist()
    a, b = results.load(written.parent), results.load(trained_run.parent)
    assert list(a.columns) == list(b.columns) and dict(a.dtypes) == dict(b.dtypes)


def test_replicate_summary_means_and_stds(store):
    runs = book.with_labels(results.load(store))
    summary = analysis.replicate_summary(runs, ["model", "mode"])
    assert len(summary) == 6 and set(summary["n"]) == {2}
    one = runs[(runs["model"] == "resnet-8") & (runs["mode"] == "BN")]["test_accuracy"]
    row = summary[(summary["model"] == "resnet-8") & (summary["mode"] == "BN")].iloc[0]
    assert row["mean"] == pytest.approx(one.mean()) and row["std"] == pytest.approx(one.std())


def test_inventory_counts_runs_seeds_and_hours(store):
    runs = results.load(store)
    table = analysis.run_inventory(runs)
    assert len(table) == 6 and set(table["runs"]) == {2} and set(table["seeds"]) == {2}
    assert table["train_hours"].sum() == pytest.approx(runs["train_seconds"].sum() / 3600)
    assert set(table["data"]) == {"synthetic data (not CIFAR-10)"} and set(table["epochs"]) == {"1"}
    one_seed_more = runs[~((runs["model"] == "resnet-8") & (runs["seed"] == 1))]
    assert analysis.seeds_note(one_seed_more) == "1-2 seeds" and analysis.seeds_note(runs) == "2 seed(s)"
    hardware = runs["hardware"].iloc[0]
    assert analysis.scale_note(runs) == f"1 epochs, 2 seed(s), synthetic data (not CIFAR-10), {hardware}"
    assert analysis.run_inventory(runs.iloc[:0]).empty


def test_depth_and_width_series_share_resnet14_once():
    summary = pd.DataFrame({"model": ["resnet-14", "resnet-32", "wrn-14-1", "wrn-14-2", "wrn-14-4", "resnet-56"],
                            "mean": [30.0, 34.0, 30.0, 33.0, 36.0, 38.0], "n": [3, 3, 3, 3, 1, 1]})
    series = analysis.depth_width_series(summary)
    assert list(series["deep"]["model"]) == ["resnet-14", "resnet-32", "resnet-56"]
    assert list(series["wide"]["model"]) == ["resnet-14", "wrn-14-2", "wrn-14-4"]
    # without the wrn-14-1 row (a results store names the run resnet-14) the wide series still starts there
    assert list(analysis.depth_width_series(summary.drop(index=2))["wide"]["model"]) == ["resnet-14", "wrn-14-2", "wrn-14-4"]
    slopes = analysis.depth_width_slopes(summary)
    assert slopes["wide"] == pytest.approx(3.0)  # BatchNorm parameters double with each doubling of width


def test_doubling_slope_recovers_a_line():
    slope, intercept = analysis.doubling_slope(pd.Series([1000, 2000, 4000, 8000]), pd.Series([40, 45, 50, 55]))
    assert slope == pytest.approx(5) and intercept == pytest.approx(40 - 5 * 9.965784, rel=1e-5)


def test_gamma_statistics_of_a_known_table():
    bn = pd.DataFrame({"gamma": [0.005, -0.2, 0.05, 0.5, -0.009, 1.0, 0.0, 0.3], "beta": [0.0] * 8})
    stats = analysis.gamma_beta_summary(bn)
    assert stats["gamma_frac_abs_below_0.01"] == pytest.approx(3 / 8)
    assert stats["gamma_frac_abs_below_0.1"] == pytest.approx(4 / 8)
    assert stats["gamma_frac_negative"] == pytest.approx(2 / 8)
    assert analysis.gamma_fractions(bn, (0.01, 0.5))[0.5] == pytest.approx(6 / 8)  # all but 0.5 and 1.0


# --------------------------------------------------------------------------- clamping: trained weights


def test_clamping_zeroes_exactly_the_small_gammas(trained_store):
    run_dir = results.load(trained_store)["run_dir"].iloc[0]
    model = analysis.load_model(run_dir)
    clamped, fraction = analysis.set_gamma(model, 0.3)
    before = results.load_batchnorm(run_dir)
    assert fraction == pytest.approx((before["gamma"].abs() < 0.3).mean(), abs=1e-6)
    for (name, a), b in zip(model.state_dict().items(), clamped.state_dict().values()):
        if name.endswith("weight") and a.dim() == 1 and "fc" not in name:
            assert ((b == 0) | (b == a)).all() and ((a.abs() < 0.3) == (b == 0)).all()
    binary, _ = analysis.set_gamma(model, 0.3, keep="one")
    gammas = [m.weight for m in binary.modules() if hasattr(m, "running_var")]
    assert all(set(g.detach().unique().tolist()) <= {-1.0, 0.0, 1.0} for g in gammas)


def test_clamp_curve_is_stored_and_starts_at_the_unclamped_accuracy(trained_run, synthetic, tiny):
    runs = results.load(trained_run.parent)
    run = runs.iloc[0]
    with pytest.raises(ValueError, match="trained on data"):
        analysis.clamp_curve(run["run_dir"], tiny)  # another data set's curve would be meaningless
    curve = analysis.clamp_curve(run["run_dir"], synthetic)
    unclamped = curve[(curve["keep"] == "value") & (curve["threshold"] == 0)]["test_accuracy"].iloc[0]
    assert unclamped == pytest.approx(run["test_accuracy"])
    assert (Path(run["run_dir"]) / "clamping.csv").is_file()
    assert set(curve["keep"]) == {"value", "one", "mean"}


def test_a_clamp_curve_cut_short_keeps_its_evaluations_and_resumes(trained_run, synthetic, monkeypatch):
    import bnlib.train

    run_dir = trained_run
    (run_dir / "clamping.csv").unlink(missing_ok=True)
    evaluate, calls, ended = bnlib.train.evaluate, [], []

    class SessionEnded(Exception):
        pass

    def stopped_at_the_third(*args, **kwargs):  # the session ends during the third evaluation
        calls.append(1)
        if len(calls) == 3 and not ended:
            ended.append(1)
            raise SessionEnded
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(bnlib.train, "evaluate", stopped_at_the_third)
    with pytest.raises(SessionEnded):
        analysis.clamp_curve(run_dir, synthetic)
    assert len(pd.read_csv(run_dir / "clamping.csv")) == 2
    calls.clear()
    whole = analysis.clamp_curve(run_dir, synthetic)
    assert len(calls) == len(analysis.clamp_grid()) - 2 and len(whole) == len(analysis.clamp_grid())


def test_clamp_curve_computes_only_what_is_not_stored(trained_run, synthetic):
    run_dir = str(trained_run)
    first = analysis.clamp_curve(run_dir, synthetic, grid=[("value", 0.0), ("one", 0.01)])
    assert len(first) == 2 and len(pd.read_csv(Path(run_dir) / "clamping.csv")) == 2
    assert analysis.clamp_curve(run_dir, None).equals(first)  # without data: what is stored
    whole = analysis.clamp_curve(run_dir, synthetic)
    assert len(whole) == len(analysis.clamp_grid()) == len(pd.read_csv(Path(run_dir) / "clamping.csv"))
    kept = whole[(whole["keep"] == "value") & (whole["threshold"] == 0.0)]
    assert kept["test_accuracy"].tolist() == first["test_accuracy"].iloc[:1].tolist()  # not evaluated again
    asked = analysis.clamp_curve(run_dir, synthetic, grid=[("mean", 0.01)])
    assert asked[["keep", "threshold"]].values.tolist() == [["mean", 0.01]]
    assert analysis.clamp_missing(run_dir) == [] and analysis.clamp_missing(run_dir, [("one", 0.3)]) == [("one", 0.3)]
    assert list(analysis.clamp_curve(run_dir, None, grid=[("one", 0.3)]).columns) == analysis.CLAMP_COLUMNS  # none yet
    weightless = Path(run_dir) / results.MODEL
    weightless.rename(weightless.with_suffix(".away"))
    try:
        with pytest.raises(FileNotFoundError):  # asked to compute without the weights: an error, not a quiet gap
            analysis.clamp_curve(run_dir, synthetic, grid=[("one", 0.3)])
    finally:
        weightless.with_suffix(".away").rename(weightless)


def test_a_damaged_clamping_curve_is_set_aside_and_computed_again(trained_run, synthetic):
    (trained_run / results.CLAMPING).write_text("keep,foo\nbar,baz\n")
    curve = analysis.clamp_curve(trained_run, synthetic)
    assert len(curve) == len(analysis.clamp_grid())
    assert len(list(trained_run.glob("clamping.csv.damaged-*"))) == 1


def test_jpeg_price_fits_accuracy_against_quality():
    rows = pd.DataFrame({
        "model": "resnet-14", "epochs": 16, "mode": ["BN", "BN", "BN", "All", "All"],
        "test_accuracy": [40.0, 38.0, 35.0, 80.0, 79.0],
        "data_source": ["image-folder-tar:cifar10-jpeg.tar.gz", "image-folder-tar:cifar10-jpeg-q50.tar.gz",
                        "image-folder-tar:cifar10-jpeg-q25.tar.gz", "image-folder-tar:cifar10-jpeg.tar.gz",
                        "image-folder-tar:cifar10-jpeg-q50.tar.gz"]})
    price = analysis.jpeg_price(rows).set_index("mode")
    assert price.loc["BN", "quality 75"] == 40.0 and price.loc["BN", "quality 25"] == 35.0
    assert price.loc["BN", "points per 10 quality"] == pytest.approx(10 * np.polyfit([75, 50, 25], [40, 38, 35], 1)[0])
    assert price.loc["All", "points per 10 quality"] == pytest.approx(0.4)
    assert price.loc["All", "copy's cost, extrapolated"] == pytest.approx(1.0)  # 80 + 25 * 0.04 at quality 100
    slope, intercept = np.polyfit([75, 50, 25], [40, 38, 35], 1)
    assert price.loc["BN", "copy's cost, extrapolated"] == pytest.approx(intercept + 100 * slope - 40)
    assert list(price.columns[:4]) == ["quality 75", "quality 50", "quality 25", "points per 10 quality"]
    assert analysis.jpeg_price(rows[rows["data_source"].str.contains("q50")]).iloc[0]["runs"] == 1
    assert set(price["fewest seeds"]) == {1}
    twice = analysis.jpeg_price(pd.concat([rows, rows[rows["mode"] == "All"]])).set_index("mode")
    assert twice.loc["All", "runs"] == 4 and twice.loc["All", "fewest seeds"] == 2 and twice.loc["BN", "fewest seeds"] == 1


def test_seed_spread_is_the_range_between_seeds_of_one_experiment():
    import pandas as pd

    from bnlib.analysis import seed_spread

    runs = pd.DataFrame({"model": "resnet-14", "trainable": ["bn", "bn", "bn", "all", "all", "none"],
                         "bn_init": "uniform", "feature_init": "he-normal", "normalize": True,
                         "epochs": 2, "seed": [0, 1, 2, 0, 1, 0], "status": "complete",
                         "test_accuracy": [40.0, 43.5, 41.0, 60.0, 61.0, 10.0]})
    table = seed_spread(runs)
    assert table.to_dict("records") == [{"epochs": 2, "experiments": 2, "median range": 2.25, "largest range": 3.5}]
    assert seed_spread(runs[runs["trainable"] == "none"]).empty  # one seed: no spread to measure


def test_readers_of_a_damaged_clamping_curve_write_nothing(trained_run, caplog):
    """A reader (a chapter, sweep --dry-run) may read a store it cannot write: a damaged curve
    counts as missing, in memory; only a call that computes the curve sets the file aside."""
    (trained_run / results.CLAMPING).write_text("keep,foo\nbar,baz\n")
    before = sorted(p.name for p in trained_run.iterdir())
    with caplog.at_level("WARNING", logger="bnlib"):
        assert analysis.clamp_curve(trained_run, None).empty
        assert analysis.clamp_missing(trained_run) == analysis.clamp_grid()
    assert sorted(p.name for p in trained_run.iterdir()) == before
    assert (trained_run / results.CLAMPING).read_text() == "keep,foo\nbar,baz\n"
    assert any("clamping.csv" in r.getMessage() for r in caplog.records)
