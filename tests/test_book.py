"""The book: chapters have a papermill parameters cell, the analysis and figure functions work on
results tables, and a built chapter shows an interactive plotly figure in headless Chromium."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from bnlib import RunConfig, analysis, book, claims, figures, results
from bnlib.profiles import PROFILES, Plan
from bnlib.train import train

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
CONFIG_FIELDS = ("profile", "models", "modes", "seeds", "epochs", "device", "data", "runs_dir", "train_missing")


def test_there_is_a_chapter_per_section():
    names = [p.stem for p in CHAPTERS]
    assert len(names) == 9 and names[0] == "01-introduction" and names[-1] == "09-differences"
    toc = (ROOT / "_toc.yml").read_text()
    assert all(f"chapters/{n}" in toc for n in names)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_has_one_parameters_cell_with_the_config_fields(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(f"\n{name} =" in "\n" + tagged[0].source for name in CONFIG_FIELDS)
    assert sum(len(c.get("outputs", [])) for c in nb.cells) <= 4  # no stored results beyond nbval's checks


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_code_cell_is_valid_python(path):
    import ast

    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            ast.parse(cell.source)  # a chapter that cannot even be parsed fails nbval only after minutes


@pytest.fixture(scope="module")
def synthetic():
    from bnlib import data

    return data.load("synthetic")  # what the smoke profile reads


@pytest.fixture(scope="module")
def store(tmp_path_factory, synthetic):
    """A small results store: two networks, three modes, two seeds, one epoch."""
    runs_dir = tmp_path_factory.mktemp("store")
    for model in ("resnet-8", "resnet-14"):
        for mode in ("all", "bn", "bn,shortcut,output"):
            for seed in (0, 1):
                train(RunConfig.from_flat(model=model, trainable=mode, seed=seed, epochs=1, data="synthetic"),
                      runs_dir, dataset=synthetic)
    return runs_dir


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


def test_trend_lines_describe_the_summary():
    summary = pd.DataFrame({"model": ["resnet-14", "resnet-32", "resnet-56", "resnet-14", "resnet-32"],
                            "mode": ["BN", "BN", "BN", "All", "All"], "mean": [30.0, 35.5, 40.0, 60.0, 58.0],
                            "n": [3, 3, 1, 3, 0]})
    nets = ["resnet-14", "resnet-32", "resnet-56"]
    assert book.trend(summary, "BN", nets) == (
        "BN: resnet-14 30.0% → resnet-32 35.5% → resnet-56 40.0% (rises at every step; +10.0 points overall)")
    assert book.trend(summary, "All", nets).startswith("All: fewer than two")  # resnet-32 All has no finished run
    assert "does not move in one direction" in book.trend(summary.assign(mean=[30, 20, 40, 0, 0]), "BN", nets)


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


def test_clamping_zeroes_exactly_the_small_gammas(store):
    run_dir = results.load(store)["run_dir"].iloc[0]
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


def test_clamp_curve_is_stored_and_starts_at_the_unclamped_accuracy(store, synthetic, tiny):
    runs = results.load(store)
    run = runs.iloc[0]
    with pytest.raises(ValueError, match="trained on data"):
        analysis.clamp_curve(run["run_dir"], tiny)  # another data set's curve would be meaningless
    curve = analysis.clamp_curve(run["run_dir"], synthetic)
    unclamped = curve[(curve["keep"] == "value") & (curve["threshold"] == 0)]["test_accuracy"].iloc[0]
    assert unclamped == pytest.approx(run["test_accuracy"])
    assert (Path(run["run_dir"]) / "clamping.csv").is_file()
    assert set(curve["keep"]) == {"value", "one", "mean"}


def test_a_clamp_curve_cut_short_keeps_its_evaluations_and_resumes(store, synthetic, monkeypatch):
    import bnlib.train

    run_dir = Path(results.load(store)["run_dir"].iloc[2])
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


def test_clamp_curve_computes_only_what_is_not_stored(store, synthetic):
    run_dir = results.load(store)["run_dir"].iloc[1]
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


def test_clamping_claims_read_the_stored_curves(store, synthetic):
    runs = results.load(store)
    bn14 = runs[(runs["model"] == "resnet-14") & (runs["trainable"] == "bn")]
    curves = [analysis.clamp_curve(d, synthetic) for d in bn14["run_dir"]]
    board = claims.scoreboard(runs).set_index("id")

    def at(curve, keep, threshold):
        return curve[(curve["keep"] == keep) & np.isclose(curve["threshold"], threshold)]["test_accuracy"].iloc[0]

    binarised = np.mean([at(c, "one", 0.01) for c in curves])
    dropped = np.mean([at(c, "value", 0.0) - at(c, "value", 0.01) for c in curves])
    assert board.loc["binarize-bn-14", "ours"] == pytest.approx(binarised, abs=1e-3)
    assert board.loc["clamp-001-bn-14", "ours"] == pytest.approx(dropped, abs=1e-3)


def test_trend_claims_hold_by_sign(store):
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
    assert board.loc["bn-14", "holds if"] == "within ±2 of the paper"
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


def test_figures_build_from_tables(store):
    runs = book.with_labels(results.load(store))
    summary = analysis.replicate_summary(runs, ["model", "mode"])
    fig = figures.accuracy_by_network(summary, runs, "mode", "Figure 2", ["resnet-8", "resnet-14"])
    assert {t.name for t in fig.data} == {"All", "BN", "BN+S+O"}
    assert "synthetic" in fig.layout.title.text and "2 seed(s)" in fig.layout.title.text
    bn = summary[summary["mode"] == "BN"]
    assert len(figures.accuracy_vs_bn_parameters(bn, runs).data) == 2  # the deep series: points and its fit
    plan = Plan.from_parameters("smoke", runs_dir=str(store))
    curves = book.clamping_curves(plan, runs)
    slider = figures.clamping_slider(curves, runs, ["resnet-8", "resnet-14"])
    assert len(slider.frames) == len(analysis.CLAMP_THRESHOLDS) and slider.layout.sliders


def test_chapter_tables_show_the_whole_scale_label():
    scale = "resnet-14; 2 epochs, 3 seed(s), CIFAR-10, JPEG copy, AMD EPYC 7B13 (2 threads)"
    with pd.option_context("display.max_colwidth", 50, "display.precision", 6):  # pandas' defaults, restored after
        book.setup(profile="smoke")
        assert "JPEG copy, AMD EPYC" in pd.DataFrame({"scale": [scale]})._repr_html_()


def test_plan_finds_stored_runs_and_reports_missing_ones(store, capsys):
    plan = Plan.from_parameters("smoke", models=["resnet-8"], modes=["bn"], seeds=2, runs_dir=str(store),
                                train_missing=False)
    found = plan.ensure(plan.figure2())
    assert len(found) == 2 and set(found["trainable"]) == {"bn"}
    plan = Plan.from_parameters("smoke", models=["resnet-8"], modes=["none"], seeds=1, runs_dir=str(store),
                                train_missing=False)
    assert plan.ensure(plan.figure2()).empty
    message = capsys.readouterr().out
    assert "1 run(s)" in message and "python -m bnlib train --model resnet-8 --trainable none" in message


def test_live_clamping_needs_the_weights_and_the_data_here(store, monkeypatch):
    plan = Plan.from_parameters("smoke", runs_dir=str(store))  # case study: resnet-8
    runs = book.with_labels(results.load(store))
    live = book.live_run(plan, runs)
    assert live in set(runs[(runs["model"] == "resnet-8") & (runs["mode"] == "BN")]["run_dir"])
    assert book.live_run(plan, runs[runs["run_dir"] != live]) not in (None, live)  # the other seed
    monkeypatch.setattr(Plan, "fingerprint", lambda self: "another-data-set")
    assert book.live_run(plan, runs) is None


def test_plan_matches_the_data_only_when_a_chapter_names_it_or_trains(store, monkeypatch):
    fields = dict(models=["resnet-8"], modes=["bn"], seeds=2, runs_dir=str(store), train_missing=False)
    monkeypatch.setattr(Plan, "fingerprint", lambda self: "another-data-set")
    plan = Plan.from_parameters("smoke", **fields)
    assert len(plan.match(plan.figure2())[0]) == 2  # the store's runs, whatever data they used
    for strict in (Plan.from_parameters("smoke", data="synthetic", **fields),
                   Plan.from_parameters("smoke", **{**fields, "train_missing": True})):
        found, missing = strict.match(strict.figure2())
        assert found.empty and len(missing) == 2


def test_other_scales_are_shown_apart_and_side_by_side(store, tmp_path, monkeypatch):
    """A chapter shows the other profiles' stores that hold runs (the GPU's paper-scale runs in a
    cpu chapter), each in its own rows, and sets the claims both answer side by side."""
    import dataclasses

    monkeypatch.setitem(PROFILES, "cpu", dataclasses.replace(PROFILES["cpu"], runs_dir=str(store)))
    monkeypatch.setitem(PROFILES, "paper", dataclasses.replace(PROFILES["paper"], runs_dir=str(tmp_path / "none")))
    smoke = Plan.from_parameters("smoke", runs_dir=str(store))
    assert [p.profile.name for p in book.other_scales(smoke)] == ["cpu"]  # paper has no runs
    assert book.other_scales(Plan.from_parameters("cpu")) == []  # a chapter's own store is not another scale

    table = book.paper_vs_ours(smoke, ("Figure 2",))
    sources = table.index.get_level_values("results")
    assert set(sources) == {"smoke", "cpu"}
    assert (table.loc[sources == "cpu", "holds"] != "not run").all()  # the other scale only where it answers
    assert "bn-14" in table.xs("cpu", level="results").index

    side = book.scales_side_by_side(smoke)
    assert "bn-14" in side.index and "bn-110" not in side.index  # answered at both scales only
    assert (side["ours (smoke)"] == side["ours (cpu)"]).all()  # one store behind both here
    monkeypatch.setitem(PROFILES, "cpu", dataclasses.replace(PROFILES["cpu"], runs_dir=str(tmp_path / "none")))
    assert book.scales_side_by_side(smoke).empty


def test_wrn_n_1_is_resnet_n_everywhere(store):
    assert RunConfig.from_flat(model="WRN-14-1") == RunConfig.from_flat(model="resnet-14")  # one address
    plan = Plan.from_parameters("smoke", models=["wrn-14-1", "resnet-14"], modes=["bn"], seeds=2,
                                runs_dir=str(store))
    assert plan.networks("deep") == plan.networks("wide") == ("resnet-14",) and len(plan.figure2()) == 2
    found, missing = plan.match(plan.figure2())
    assert not missing and list(found["model"]) == ["resnet-14"] * 2  # the stored runs, once each
    assert Plan.from_parameters("cpu").networks("wide") == ("resnet-14", "wrn-14-2", "wrn-14-4")


def test_cpu_profile_grid_trains_each_network_once_cheap_and_seed_zero_first():
    from bnlib.models import training_cost
    from bnlib.sweep import profile_grid

    grid = profile_grid("cpu")
    assert len(grid) == len(set(grid)) and "wrn-14-1" not in {c.model.model for c in grid}
    order = [(c.train.seed, training_cost(c.model.model)) for c in grid]
    assert order == sorted(order) and {c.train.epochs for c in grid} == {PROFILES["cpu"].epochs}
    seeds = {}
    for c in grid:
        seeds.setdefault(c.model.model, set()).add(c.train.seed)
    # the costlier a network, the fewer replicates: the grid fits about 12 hours of the CPU
    assert seeds["resnet-56"] == seeds["wrn-14-4"] == {0}
    assert seeds["resnet-32"] == seeds["wrn-14-2"] == {0, 1} and seeds["resnet-14"] == {0, 1, 2}
    assert len(grid) == 90
    plan = Plan.from_parameters("cpu")
    chapters = plan.figure1() + plan.figure2() + plan.bn_init_grid() + plan.feature_init_grid() + plan.ablation_grid()
    assert set(plan.all_runs()) == set(chapters) == set(grid)  # the sweep trains what the chapters show
    assert plan.scale() == "2 epochs, 3 seed(s) (2 for resnet-32, wrn-14-2; 1 for resnet-56, wrn-14-4)"
    plan = Plan.from_parameters("cpu", seeds=2)  # a chapter that asks for seeds gets them everywhere
    assert {c.train.seed for c in plan.figure2() if c.model.model == "wrn-14-4"} == {0, 1}


def test_profiles():
    assert PROFILES["paper"].epochs == 160 and PROFILES["paper"].seeds == 5
    assert len(PROFILES["paper"].deep + PROFILES["paper"].wide) == 13
    assert PROFILES["smoke"].data == "synthetic"
    cpu = Plan.from_parameters("cpu")
    gamma = cpu.gamma_grid()  # Figures 5-7: Figure 2's All and BN runs, every network and seed
    assert set(gamma) <= set(cpu.figure2()) and {c.train.trainable for c in gamma} == {"all", "bn"}
    assert len(gamma) == 2 * sum(cpu.seeds_of(n) for n in cpu.networks())


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_built_book_renders_a_plotly_figure(tmp_path):
    """Build the whole book (smoke profile, into a temporary folder) and let headless Chromium
    render the Figure 2 chapter: plotly.js must run offline and draw."""
    env = {**os.environ, "BNLIB_PROFILE": "smoke"}
    jb = Path(sys.executable).parent / "jupyter-book"
    built = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(tmp_path)], env=env,
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    assert {p.stem for p in (html / "chapters").glob("*.html")} == {p.stem for p in CHAPTERS}
    page = html / "chapters" / "04-training-only-batchnorm.html"
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert "plot-container plotly" in dom.stdout  # plotly.js ran and drew a figure, offline
    assert dom.stdout.count("main-svg") >= 2
