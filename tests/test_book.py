"""bnlib.book and the book itself: chapters have a papermill parameters cell, the helpers chapters
call (trend lines, clamping curves, the live explorer's run, other scales) work on results stores,
and a built chapter shows an interactive plotly figure in headless Chromium."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from bnlib import analysis, book, figures, results
from bnlib.errors import ConfigError
from bnlib.links import broken_links
from bnlib.plan import PROFILES, Plan

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


def test_trend_lines_describe_the_summary():
    summary = pd.DataFrame({"model": ["resnet-14", "resnet-32", "resnet-56", "resnet-14", "resnet-32"],
                            "mode": ["BN", "BN", "BN", "All", "All"], "mean": [30.0, 35.5, 40.0, 60.0, 58.0],
                            "n": [3, 3, 1, 3, 0]})
    nets = ["resnet-14", "resnet-32", "resnet-56"]
    assert book.trend(summary, "BN", nets) == (
        "BN: resnet-14 30.0% → resnet-32 35.5% → resnet-56 40.0% (rises at every step; +10.0 points overall)")
    assert book.trend(summary, "All", nets).startswith("All: fewer than two")  # resnet-32 All has no finished run
    assert "does not move in one direction" in book.trend(summary.assign(mean=[30, 20, 40, 0, 0]), "BN", nets)


def test_chapter_tables_show_the_whole_scale_label():
    scale = "resnet-14; 2 epochs, 3 seed(s), CIFAR-10, JPEG copy, AMD EPYC 7B13 (2 threads)"
    with pd.option_context("display.max_colwidth", 50, "display.precision", 6):  # pandas' defaults, restored after
        book.setup(profile="smoke")
        assert "JPEG copy, AMD EPYC" in pd.DataFrame({"scale": [scale]})._repr_html_()


def test_clamping_curves_read_what_is_stored_and_compute_what_is_missing(trained_run, store):
    """Figure 7's curves: computed and stored where a run's weights and data are here, read
    from the run folders where they are not (a fresh clone has no weights)."""
    plan = Plan.from_parameters("smoke", runs_dir=str(trained_run.parent))
    runs = book.with_labels(results.load(trained_run.parent))
    curves = book.clamping_curves(plan, runs)
    assert len(curves) == len(runs) * len(analysis.clamp_grid()) and set(curves["mode"]) == {"BN"}
    assert all(analysis.clamp_missing(d) == [] for d in runs["run_dir"])  # stored in each run folder
    written = book.with_labels(results.load(store))
    stored = book.clamping_curves(Plan.from_parameters("smoke", runs_dir=str(store)), written)
    assert len(stored) == len(written) * len(analysis.clamp_grid())


def test_live_clamping_needs_the_weights_and_the_data_here(trained_store, monkeypatch):
    plan = Plan.from_parameters("smoke", runs_dir=str(trained_store))  # case study: resnet-8
    runs = book.with_labels(results.load(trained_store))
    live = book.live_run(plan, runs)
    assert live in set(runs[(runs["model"] == "resnet-8") & (runs["mode"] == "BN")]["run_dir"])
    assert book.live_run(plan, runs[runs["run_dir"] != live]) not in (None, live)  # the other seed
    monkeypatch.setattr(Plan, "fingerprint", lambda self: "another-data-set")
    assert book.live_run(plan, runs) is None


def test_the_live_section_says_where_the_slider_works_and_shows_the_static_one(trained_run, monkeypatch, capsys):
    """Chapter 7's section "Live": the command that opens the chapter in JupyterLab, the live
    widget where the run's weights and data are here, and the static slider of the same run
    in both cases (a static page, built without weights or data, still has its stored curve)."""
    plan = Plan.from_parameters("smoke", runs_dir=str(trained_run.parent))
    runs = book.with_labels(results.load(trained_run.parent))
    monkeypatch.setattr(Plan, "ensure", lambda self, configs: results.load(trained_run.parent))
    sliders = []
    monkeypatch.setattr(figures, "clamping_slider", lambda curve, run, networks: sliders.append(
        (set(run["run_dir"]), len(curve))) or type("Shown", (), {"show": lambda self: None})())
    book.live_section(plan)
    live = capsys.readouterr().out
    assert book.OPEN_IN_JUPYTER in live and "Live: " in live and "VBox" in live  # the widget's repr, outside Jupyter
    assert sliders == [({str(trained_run)}, len(analysis.clamp_grid()))]

    monkeypatch.setattr(Plan, "fingerprint", lambda self: "another-data-set")  # the data is not here
    assert book.live_run(plan, runs) is None and book.static_run(plan, runs) == str(trained_run)
    book.live_section(plan)
    static = capsys.readouterr().out
    assert book.OPEN_IN_JUPYTER in static and "no live slider" in static and "Live: " not in static
    assert sliders[1] == sliders[0]  # the same run's static slider, from its stored clamping.csv


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

    side = book.scales_side_by_side(smoke, ladder=None)
    assert "bn-14" in side.index and "bn-110" not in side.index  # answered at both scales only
    assert (side["ours (smoke)"] == side["ours (cpu)"]).all()  # one store behind both here
    monkeypatch.setitem(PROFILES, "cpu", dataclasses.replace(PROFILES["cpu"], runs_dir=str(tmp_path / "none")))
    assert book.scales_side_by_side(smoke, ladder=None).empty
    with_ladder = book.scales_side_by_side(smoke, ladder=store)  # the epoch ladder's store is a scale too
    assert (with_ladder["ours (ladder)"] == with_ladder["ours (smoke)"]).all() and "bn-14" in with_ladder.index
    shown = book.readable_claims(with_ladder.reset_index())
    assert "quantity" not in shown and shown.set_index("id").loc["gamma-001-bn-14", "ours (ladder)"].endswith("%")


def test_the_link_checker_finds_missing_files_and_anchors(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "one.html").write_text("<h1 id='top'>One</h1><img src='../missing.png'>")
    (tmp_path / "index.html").write_text(
        "<a href='chapters/one.html#top'>fine</a> <a href='chapters/one.html#gone'>no anchor</a> "
        "<a href='book/chapters/one.html'>no file</a> <a href='https://example.org/x'>off the site</a> "
        "<a href='#here' id='here'>self</a> <link rel='stylesheet' href='style.css?v=1'>")
    (tmp_path / "style.css").write_text("")
    assert broken_links(tmp_path) == ["chapters/one.html: ../missing.png", "index.html: book/chapters/one.html",
                                      "index.html: chapters/one.html#gone"]


def test_the_verdict_answers_each_headline_claim_at_the_largest_scale(store, tmp_path):
    import shutil

    from bnlib import claims

    root = tmp_path / "runs"
    shutil.copytree(store, root / "cpu")
    table = book.verdict(runs_root=root)
    assert list(table.columns) == ["claim", "paper", "rule", "ours", "holds", "our scale", "chapter"]
    assert len(table) == len(book.HEADLINE)
    # the fixture's runs are 1-epoch runs: no claim reads as a bare yes/no, each names its scale
    assert set(table["holds"]) <= {"not yet run", "not yet at 160 epochs; at 1 epochs: yes",
                                   "not yet at 160 epochs; at 1 epochs: no"}
    assert (table["holds"] == "not yet run").any()  # the fixture has no ResNet-110
    answered = table[table["holds"] != "not yet run"]
    assert len(answered) and all(s.startswith("1 epochs, ") and "synthetic" in s for s in answered["our scale"])
    assert not table[["paper", "ours"]].apply(lambda c: c.str.contains("e[+-]", regex=True)).any().any()
    known = claims.load_claims().set_index("id")
    assert set(book.HEADLINE) <= set(known.index) and all(book.CHAPTERS.get(f) for f in known.loc[list(book.HEADLINE), "figure"])
    # one paper value per claim: the number claims.csv states, wherever it states one
    gain = table[table["claim"] == known.loc["bnso-gain-14", "claim"]].iloc[0]
    assert (gain["paper"], gain["rule"]) == ("15.0", "ours > 0")
    spike = table[table["claim"] == known.loc["gamma-spike-14", "claim"]].iloc[0]  # a trend with no number
    assert (spike["paper"], spike["rule"]) == ("> 0", "ours > 0")
    assert set(table.loc[table["claim"] == known.loc["bn-14", "claim"], "rule"]) == {"within ±2 points of the paper"}
    sentence = book.verdict_summary(table)
    assert sentence.startswith(f"Of the paper's {len(table)} headline claims, 0 are answered at its 160 epochs")
    assert re.search(rf"\b{len(answered)} (is|are) answered only by shorter runs", sentence)
    assert re.search(rf"\b{(table['holds'] == 'not yet run').sum()} (is|are) not run yet", sentence)
    html = book.verdict_html(table)  # the landing page is book/index.html: chapters are one folder up
    assert '<a href="../chapters/04-training-only-batchnorm.html">4</a>' in html and "<th>holds</th>" in html


def test_the_verdict_counts_answers_at_the_papers_scale_apart():
    table = pd.DataFrame({"holds": ["yes", "yes", "no", "not yet at 160 epochs; at 2 epochs: no", "not yet run"]})
    assert book.verdict_summary(table) == (
        "Of the paper's 5 headline claims, 3 are answered at its 160 epochs: 2 hold and 1 does not. 1 is answered "
        "only by shorter runs, which hint at the answer but do not settle it, and 1 is not run yet.")


def test_the_landing_page_shows_the_verdict():
    import json

    cells = json.loads((ROOT / "book" / "index.ipynb").read_text())["cells"]
    assert any("book.verdict" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")


def test_tables_for_reading(store, capsys):
    from bnlib import claims

    board = claims.scoreboard(results.load(store))
    styled = book.claims_table(board, Plan.from_parameters("smoke", runs_dir=str(store)))
    lines = capsys.readouterr().out.strip().splitlines()
    not_run = board[board["holds"] == "not run"]
    # one line per chapter and command: the smoke profile's sweep for claims about its own
    # networks, the paper profile's for the others (ResNet-110, ...), which smoke never trains
    chapters = not_run["figure"].map(book.CHAPTERS)
    assert chapters.nunique() <= len(lines) <= 2 * chapters.nunique()
    networks = set(Plan.from_parameters("smoke").networks())
    by_id = claims.load_claims().set_index("id")
    for line in lines:
        ids = line.split("at this scale (", 1)[1].split(")", 1)[0].split(", ")
        own = {book.claim_networks(by_id.loc[i]) <= networks for i in ids}
        assert own == {True} and line.endswith("--profile smoke") or own == {False} and line.endswith("--profile paper")
    html = styled.to_html()
    assert "not run" not in html and "e-0" not in html and "e+0" not in html
    assert "overflow-wrap" in html and 'class="row_heading' not in html  # wrapped cells, no index
    assert book.plain(0.005) == "0.005" and book.plain(-33.8123) == "-33.8" and book.plain(float("nan")) == ""


def test_claims_fractions_and_inits_read_as_a_reader_reads_them(store, capsys):
    """Fractions of γ as percentages (in the scoreboard, seed by seed too), initialisations by the
    paper's names under readable headers, a chapter's claims with the ones not run collapsed."""
    from bnlib import claims

    runs = book.with_labels(results.load(store))
    board = claims.scoreboard(results.load(store))
    spike = board.set_index("id").loc["gamma-spike-14"]
    assert spike["per seed"].split(", ")[0].endswith("%")
    html = book.claims_table(board[board["id"] == "gamma-01-all-14"]).to_html()
    assert ">3.0%<" in html  # the paper's 0.03
    assert claims.reading(0.0912, "gamma_frac_abs_below") == "9.1%" and claims.reading(34.123, "accuracy") == "34.1"

    named = book.named_inits(pd.DataFrame({"bn_init": ["ones-beta-one", "new-init"], "feature_init": ["binary"] * 2}))
    assert list(named.columns) == ["BatchNorm init", "feature init"]
    assert list(named["BatchNorm init"]) == ["γ=β=1", "new-init"] and named["feature init"][0] == "binary ±σ"

    stats = book.gamma_stats(analysis.gamma_table(runs)).data
    assert list(stats.columns[:2]) == ["model", "mode"] and "|γ| < 0.01 (%)" in stats.columns
    fractions = analysis.gamma_table(runs).groupby(["model", "mode"], sort=False)["gamma_frac_abs_below_0.01"].mean()
    assert stats["|γ| < 0.01 (%)"].tolist() == pytest.approx((100 * fractions).tolist())
    assert book.gamma_stats(analysis.gamma_table(runs.iloc[:0])).data.empty

    plan = Plan.from_parameters("smoke", runs_dir=str(store))
    clamped = book.clamped_table(book.clamping_curves(plan, runs)).data
    assert list(clamped.columns[:3]) == ["model", "mode", "unclamped"] and "|γ| < 0.01" in clamped.columns
    curves = book.clamping_curves(plan, runs)  # each cell: the accuracy and the share of γ clamped
    first = curves[(curves["keep"] == "value") & (curves["threshold"] == 0.1)].groupby(["model", "mode"], sort=False)
    accuracy, fraction = first["test_accuracy"].mean(), first["fraction_clamped"].mean()
    expected = {key: f"{accuracy[key]:.1f} ({100 * fraction[key]:.0f}% of γ)" for key in accuracy.index}
    assert dict(zip(zip(clamped["model"], clamped["mode"]), clamped["|γ| < 0.1"])) == expected

    versus = book.gamma_stats_vs_paper(analysis.gamma_table(runs), "resnet-14").data  # Figure 5: paper beside ours
    assert list(versus.columns) == ["mode", "statistic", "paper", "ours"]
    row = versus[(versus["mode"] == "All") & (versus["statistic"] == "|γ| < 0.1")].iloc[0]
    ours = 100 * analysis.gamma_table(runs).query("model == 'resnet-14' and mode == 'All'")["gamma_frac_abs_below_0.1"].mean()
    assert row["paper"] == "3.0%" and row["ours"] == f"{ours:.1f}%"
    assert book.gamma_stats_vs_paper(analysis.gamma_table(runs), "resnet-8").data.empty  # the paper reports none

    capsys.readouterr()
    chapter = book.chapter_claims(plan, ("Figure 5", "Figure 6")).data
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chapter 6: ") and "gamma-mean-all-110" in lines[0]
    assert "not run" not in set(chapter["holds"]) and "smoke" in set(chapter["results"])
    assert all(v.endswith("%") for v in chapter["ours"])


def test_the_shipped_stores_are_described_from_their_runs(store, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(store, root / "cpu")
    runs = results.load(root / "cpu")
    summary = book.store_summary(root)
    assert summary[["store", "runs", "finished"]].values.tolist() == [["data/runs/cpu", len(runs), len(runs)]]
    assert summary["epochs"][0] == "1" and "synthetic" in summary["data"][0] and summary["hours"][0] > 0
    assert book.unfinished(book.shipped_runs(root)).empty
    stopped = Path(runs["run_dir"][0].replace(str(store), str(root / "cpu")))
    (stopped / results.RESULT).unlink()  # as if its job ran out of time after its epochs
    left = book.unfinished(book.shipped_runs(root))
    assert len(left) == 1 and left["reached"].tolist() == [len(results.load_metrics_of(stopped))]
    [line] = book.unfinished_lines(book.shipped_runs(root))
    assert f"stopped after epoch {left['reached'][0]} of 1" in line and "left out of the means" in line
    assert book.store_summary(root)["finished"][0] == len(runs) - 1


def test_the_price_of_the_copy_is_told_in_computed_sentences():
    rows = pd.DataFrame({"model": "resnet-14", "epochs": 16, "mode": ["BN", "BN", "All", "All"],
                         "test_accuracy": [40.0, 35.0, 80.0, 78.0],
                         "data_source": [f"image-folder-tar:cifar10-jpeg{q}.tar.gz" for q in ("", "-q25") * 2]})
    bridge = pd.DataFrame({"model": ["resnet-32", "resnet-32", "resnet-14"], "mode": ["All", "All", "All"],
                           "epochs": [160, 160, 160], "test_accuracy": [88.0, 89.0, 86.9]})
    comparison = book.published_comparison(bridge)
    assert comparison[["model", "published", "ours"]].values.tolist() == [["resnet-32", 92.49, 88.5]]  # no ResNet-14 published
    lines = book.jpeg_lines(analysis.jpeg_price(rows), comparison)
    assert lines[0].startswith("ResNet-14 BN, 16 epochs: 40.0% at 75, 35.0% at 25: +1.00 points per 10 quality")
    assert "the copy costs 2.5 points" in lines[0] and "copy costs 1.0 points" in lines[1]
    assert lines[2] == "resnet-32 All, 160 epochs: 88.5% on the copy against 92.5% published on the original images (-4.0 points)."
    assert lines[3].startswith("If the price measured at 16 epochs carries over to 160 epochs, the copy explains a part of "
                               "the 4.0-point gap") and "elsewhere" in lines[3]
    assert book.jpeg_lines(analysis.jpeg_price(rows[rows["data_source"].str.contains("q25")]), comparison[:0]) == []
    seeds = pd.DataFrame({"model": "resnet-14", "mode": "BN", "epochs": 4, "test_accuracy": [39.3, 36.1]})
    noted = book.jpeg_lines(analysis.jpeg_price(rows), comparison, seeds)
    assert noted[:-1] == lines and "differ by up to 3.2 points" in noted[-1] and "indication" in noted[-1]
    assert noted[-1].startswith("Each quality has one seed")
    second = rows.iloc[[0]].assign(test_accuracy=38.0)  # a second seed of BN on the copy; quality 25 keeps one
    mixed = book.jpeg_lines(analysis.jpeg_price(pd.concat([rows, second])), comparison, seeds)
    assert mixed[-1].startswith("Some qualities have one seed") and "39.0% at 75" in mixed[0]
    both = pd.concat([rows, rows.assign(test_accuracy=rows["test_accuracy"] + 1)])  # two seeds everywhere
    assert not any("one seed" in line for line in book.jpeg_lines(analysis.jpeg_price(both), comparison, seeds))


def test_the_scale_bridge_reads_every_store_at_every_length(store, tmp_path):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(store, root / "cpu")
    bridge = book.scale_bridge(models=("resnet-8",), runs_root=root)
    assert set(bridge["mode"]) == {"BN", "All"} and set(bridge["epochs"]) == {1} and len(bridge) == 4
    assert bridge["gamma_frac_abs_below_0.1"].between(0, 1).all() and bridge["clamp_cost_0.01"].notna().all()
    lines = book.scale_lines(bridge, "test_accuracy")
    assert len(lines) == 2 and all("at 1 epochs (one length only; seeds 2; seeds of one length differ by up to" in line
                                   for line in lines)  # how sure each line is: seeds, order, spread
    fig = figures.scale_bridge(bridge, "test_accuracy", "t", "test accuracy (%)")
    assert fig.layout.xaxis.type == "log"
    assert set(book.published_accuracies()["model"]) >= {"resnet-32", "resnet-56", "resnet-110"}
    # a run on the copy re-encoded at quality 50 (the price of JPEG) is kept out of the ladder's
    # means and of every claim, and in only where asked for
    from bnlib import claims

    run = Path(results.load(root / "cpu").query("model == 'resnet-8' and trainable == 'bn'")["run_dir"].iloc[0])
    for name in (results.CONFIG, results.RESULT):  # both record the data
        record = json.loads((run / name).read_text())
        (run / name).write_text(json.dumps({**record, "data_source": "image-folder-tar:cifar10-jpeg-q50.tar.gz"}))
    assert len(book.scale_bridge(models=("resnet-8",), runs_root=root)) == 3
    assert len(book.scale_bridge(models=("resnet-8",), runs_root=root, reencoded=True)) == 4
    assert len(claims.candidates(results.load(root / "cpu"), "resnet-8", "bn")) == 1


def test_the_network_page_is_one_parameterised_notebook():
    import json

    cells = json.loads((ROOT / "book" / "network.ipynb").read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and "network =" in "".join(tagged[0]["source"])
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")
    # it ends with the command that makes it again and what that writes (tests/test_lab.py runs it)
    assert "book.remake_note(plan, network)" in "".join(cells[-1]["source"])
    note = book.remake_note(Plan.from_parameters("cpu"), "resnet-14")
    assert "\n  papermill book/network.ipynb resnet-14.ipynb -k python3 -p profile cpu -p network resnet-14\n" in note
    assert "writes resnet-14.ipynb in that folder, reads the runs of data/runs/cpu (it trains nothing)" in note
    toc = (ROOT / "_toc.yml").read_text()
    assert "glob: book/networks/*" in toc and "numbered: true" in toc


def test_a_chapter_shows_an_unreadable_run_as_a_note(store, tmp_path, capsys):
    shutil.copytree(store, tmp_path / "runs")
    damaged = results.run_dirs(tmp_path / "runs")[0]
    (damaged / results.RESULT).write_text("{cut")
    plan = book.setup(profile="smoke", runs_dir=str(tmp_path / "runs"), train_missing=False)
    capsys.readouterr()
    table = results.load(plan.store)
    out = capsys.readouterr().out
    assert len(table) == len(results.run_dirs(tmp_path / "runs")) - 1
    assert out.startswith("Note: skipped run") and str(damaged / results.RESULT) in out


def test_the_case_study_at_160_epochs_is_drawn_as_the_paper_draws_it(tmp_path, monkeypatch):
    """ResNet-110 runs in the paper store (as the CPU's paper-on-cpu list trains them) reach the
    chapters' paper-scale sections with no edit: Figure 3's three curves with the learning-rate
    drops at epochs 80 and 120, Figure 5's statistics beside the paper's, Figure 7 with the share
    of γ each threshold clamps."""
    import dataclasses

    import numpy as np

    from stores import write_run

    paper_store = tmp_path / "paper"
    rng = np.random.default_rng(0)
    for mode, accuracy in (("all", 90.0), ("bn", 68.0), ("bn,shortcut,output", 73.0)):
        write_run(paper_store, model="resnet-110", trainable=mode, seed=0, accuracy=accuracy, rng=rng, epochs=160)
    monkeypatch.setitem(PROFILES, "paper", dataclasses.replace(PROFILES["paper"], runs_dir=str(paper_store),
                                                               data="synthetic"))
    monkeypatch.setitem(PROFILES, "cpu", dataclasses.replace(PROFILES["cpu"], runs_dir=str(tmp_path / "none")))
    (other,) = book.other_scales(Plan.from_parameters("smoke", runs_dir=str(tmp_path / "smoke")))
    assert other.profile.name == "paper" and other.case_study() == "resnet-110"

    curves = book.with_labels(results.load_metrics(other.store))
    figure = figures.learning_curves(curves[curves["model"] == other.case_study()], "Figure 3")
    assert sorted(trace.name for trace in figure.data) == ["resnet-110 All", "resnet-110 BN", "resnet-110 BN+S+O"]
    assert all(len(trace.x) == 160 and trace.mode == "lines" for trace in figure.data)
    assert sorted(shape.x0 for shape in figure.layout.shapes) == [80.5, 120.5]  # lr ÷ 10 after epochs 80 and 120

    found = book.stored(other, other.gamma_grid())
    versus = book.gamma_stats_vs_paper(analysis.gamma_table(found), "resnet-110").data
    assert len(versus) == 13 and "not run" not in set(versus["ours"])  # the paper's 13 statistics of ResNet-110
    assert versus.set_index(["mode", "statistic"]).loc[("BN", "|γ| < 0.01"), "paper"] == "27.0%"

    clamped = book.clamped_table(book.clamping_curves(other, found)).data.set_index("mode")
    assert clamped.loc["BN", "|γ| < 0.1"].endswith("% of γ)")


def test_a_network_page_pools_no_initialisations_and_agrees_with_the_chapters(tmp_path, monkeypatch, capsys):
    """A network page leads with its largest scale, draws γ, β and clamping from the default
    initialisations only (a γ = β = 1 run must not put a spike at +1 in its β), gives the same
    clamping accuracy as chapter 7's section for the same run, and calls nothing missing that
    its profile has."""
    import dataclasses

    import numpy as np

    from bnlib import sections
    from stores import write_run

    rng = np.random.default_rng(0)
    long, short = tmp_path / "long", tmp_path / "short"
    for mode, accuracy in (("all", 80.0), ("bn", 45.0)):
        write_run(long, model="resnet-14", trainable=mode, seed=0, accuracy=accuracy, rng=rng, epochs=160)
        write_run(short, model="resnet-14", trainable=mode, seed=0, accuracy=accuracy / 2, rng=rng)
    odd = write_run(long, model="resnet-14", trainable="bn", seed=0, accuracy=47.0, rng=rng, epochs=160,
                    bn_init="ones-beta-one")
    bn = pd.read_csv(odd / results.BATCHNORM)
    bn.assign(beta=1.0).to_csv(odd / results.BATCHNORM, index=False)  # γ = β = 1's spike at +1
    monkeypatch.setitem(PROFILES, "paper", dataclasses.replace(PROFILES["paper"], runs_dir=str(long), data="synthetic"))
    monkeypatch.setitem(PROFILES, "cpu", dataclasses.replace(PROFILES["cpu"], runs_dir=str(tmp_path / "none")))
    plan = Plan.from_parameters("smoke", runs_dir=str(short), train_missing=False)
    scales = book.network_scales(plan, "resnet-14")
    assert [source.profile.name for source, _ in scales] == ["paper", "smoke"]  # 160 epochs before 1
    source, runs = scales[0]
    assert str(odd) in set(runs["run_dir"])  # the page's table of runs counts it ...
    shown = []
    monkeypatch.setattr(figures.go.Figure, "show", lambda fig: shown.append(fig))
    sections.network(source, runs)
    histogram = next(f for f in shown if f.layout.title.text.startswith("Figure 5"))
    assert max(max(t.x) for t in histogram.data if t.xaxis == "x2") < 1.0  # ... its β = 1 is not pooled in
    lines = next(f for f in shown if f.layout.title.text.startswith("Figure 7"))
    chapter = book.clamping_curves(source, book.stored(source, source.gamma_grid()))
    page = {t.name: list(t.y) for t in lines.data if t.legendgroup != "unclamped"}
    for mode, values in page.items():
        kept = chapter[(chapter["mode"] == mode) & (chapter["keep"] == "value") & (chapter["threshold"] > 0)]
        assert values == list(kept.groupby("threshold")["test_accuracy"].mean())  # the chapter's number
    capsys.readouterr()
    book.network_scales(Plan.from_parameters("smoke", runs_dir=str(short), train_missing=False), "resnet-8")
    assert "not in" in capsys.readouterr().out  # the smoke profile's resnet-8 runs really are missing


def test_a_chapter_refuses_a_parameter_it_does_not_have_and_data_that_is_not_there(monkeypatch):
    """Papermill's injected cell is read back from the kernel's history: a name the parameters
    cell lacks (a typo) is one ConfigError, as is a data path that does not exist."""
    assert book.injected_names(["import os\nprofile = 'cpu'", "# Parameters\nprofile = \"smoke\"\nepochs_typo = 3\n",
                                "x = 1"]) == {"profile", "epochs_typo"}
    assert book.injected_names([]) == set() and book.injected_names(["# Parameters\nnot python ("]) == set()
    monkeypatch.setattr(book, "injected_names", lambda: {"profile", "epochs_typo"})
    with pytest.raises(ConfigError, match="unknown parameter.*epochs_typo"):
        book.setup(profile="smoke", epochs=None)
    monkeypatch.setattr(book, "injected_names", lambda: {"profile", "network"})
    book.setup(profile="smoke", page_parameters=("network",))  # a network page's own parameter
    monkeypatch.setattr(book, "injected_names", lambda: set())
    with pytest.raises(ConfigError, match="does not exist"):
        book.setup(profile="smoke", data="/no/such/data")


def test_papermill_exits_non_zero_on_an_unknown_parameter(tmp_path):
    env = {**os.environ, "BNLIB_PROFILE": "smoke"}
    papermill = Path(sys.executable).parent / "papermill"
    done = subprocess.run([str(papermill), str(ROOT / "chapters" / "02-architectures.ipynb"), str(tmp_path / "out.ipynb"),
                           "-k", "python3", "-p", "epochs_typo", "3", "--cwd", str(ROOT / "chapters")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "unknown parameter(s) epochs_typo" in done.stdout + done.stderr


def test_one_unreadable_weights_file_is_a_note_and_the_rest_are_shown(trained_store, tmp_path, capsys):
    shutil.copytree(trained_store, tmp_path / "runs")
    plan = book.setup(profile="smoke", runs_dir=str(tmp_path / "runs"), train_missing=False)
    runs = book.with_labels(results.load(plan.store))
    damaged = Path(runs["run_dir"].iloc[0])
    (damaged / results.MODEL).write_bytes(b"not a checkpoint")
    for folder in runs["run_dir"]:
        (Path(folder) / results.CLAMPING).unlink(missing_ok=True)  # to be computed from the weights
    capsys.readouterr()
    curves = book.clamping_curves(plan, runs)
    out = capsys.readouterr().out
    assert "Note:" in out and damaged.name in out and "cannot be computed" in out
    assert set(curves["run_dir"]) == set(runs["run_dir"]) - {str(damaged)}
