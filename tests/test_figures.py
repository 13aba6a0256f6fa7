"""bnlib.figures: the paper's figures build from results tables, here a store written as plain
files (``tests/stores.py``) with Figure 7's curves stored in its run folders."""

import pandas as pd

from bnlib import analysis, book, figures, results
from bnlib.plan import Plan


def test_figures_build_from_tables(store):
    runs = book.with_labels(results.load(store))
    summary = analysis.replicate_summary(runs, ["model", "mode"])
    fig = figures.accuracy_by_network(summary, runs, "mode", "Figure 2", ["resnet-8", "resnet-14"])
    assert {t.name for t in fig.data} == {"All", "BN", "BN+S+O", "paper: BN", "paper: BN+S+O"}  # the paper's ResNet-14
    stars = {t.name: list(t.y) for t in fig.data if t.name.startswith("paper")}
    assert stars == {"paper: BN": [48.0], "paper: BN+S+O": [63.0]}
    assert "synthetic" in fig.layout.title.text and "2 seed(s)" in fig.layout.title.text
    bn = summary[summary["mode"] == "BN"]
    # two networks are two points, not a line: Figure 4 fits one only through three or more
    assert [t.mode for t in figures.accuracy_vs_bn_parameters(bn, runs).data] == ["markers"]
    three = pd.concat([bn, bn.iloc[:1].assign(model="resnet-20", mean=43.0)])
    assert [t.mode for t in figures.accuracy_vs_bn_parameters(three, runs).data] == ["markers", "lines"]
    assert all(t.mode == "markers" for t in fig.data)  # two networks per mode: markers, no line
    # each mode in its own lane at a network, the paper's star in its mode's lane, drawn after ours
    assert fig.layout.scattermode == "group"
    lanes = {t.name: t.offsetgroup for t in fig.data}
    assert lanes["paper: BN"] == lanes["BN"] != lanes["All"]
    assert [t.name for t in fig.data][-2:] == ["paper: BN", "paper: BN+S+O"]
    plan = Plan.from_parameters("smoke", runs_dir=str(store))
    curves = book.clamping_curves(plan, runs)
    slider = figures.clamping_slider(curves, runs, ["resnet-8", "resnet-14"])
    assert len(slider.frames) == len(analysis.CLAMP_THRESHOLDS) and slider.layout.sliders


def test_one_visual_language(store):
    """A mode has one colour everywhere (the paper's), networks are told apart by marker, the
    threshold axis is logarithmic, single points are markers, depth and width are two panels."""
    from bnlib import style

    runs = book.with_labels(results.load(store))
    assert style.mode_colour("All") == "#1f77b4" and style.mode_colour("BN") == style.mode_colour("γ/β/N")
    assert style.init_name("bn_init", "ones-beta-one") == "γ=β=1" and style.mode_name("gamma/beta frozen") == "γ/β frozen"
    plan = Plan.from_parameters("smoke", runs_dir=str(store))
    curves = book.clamping_curves(plan, runs)
    lines = figures.clamping_lines(curves, runs)
    assert lines.layout.xaxis.type == "log" and lines.layout.template.layout.font.size == 13
    assert lines.layout.template.layout.yaxis.rangemode == "tozero"  # no axis cut to magnify a gap
    # a panel per network, colour the mode, the unclamped accuracy dotted; binarising is a table
    assert sorted(a.text for a in lines.layout.annotations) == ["resnet-14", "resnet-8"]
    clamped = [t for t in lines.data if t.legendgroup != "unclamped"]
    assert {t.name for t in clamped} == {"All", "BN", "BN+S+O"}
    assert all(t.line.color == style.mode_colour(t.name) for t in clamped)
    assert all(min(t.x) > 0 for t in clamped)  # 0 cannot sit on a log axis
    assert {t.line.dash for t in lines.data if t.legendgroup == "unclamped"} == {"dot"}
    assert figures.legend_entries(lines) == 4  # three modes and "unclamped", once each
    binarised = book.binarised_table(curves).data
    assert {"others to ±1", "others to ±mean|γ|"} <= {c.split(", ")[-1] for c in binarised.columns}
    metrics = book.with_labels(results.load_metrics(store))
    curve = figures.accuracy_curves(metrics, "mode", "Figure 3")
    assert all(t.mode == "markers" for t in curve.data if t.name)  # one epoch: no learning curve drawn
    wide = runs.assign(**{"frac_below_0.01": 0.1, "frac_below_0.1": 0.3})
    six = figures.gamma_fractions_by_network(wide, ["resnet-8", "resnet-14", "wrn-8-2"], "mode")
    # a row per threshold; a width panel only where it has a network the depth panel lacks
    assert [a.text for a in six.layout.annotations] == ["depth: |γ| < 0.01", "depth: |γ| < 0.1"]
    wide = pd.concat([wide, wide[wide["model"] == "resnet-8"].assign(model="wrn-8-2")], ignore_index=True)
    six = figures.gamma_fractions_by_network(wide, ["resnet-8", "resnet-14", "wrn-8-2"], "mode")
    assert [a.text for a in six.layout.annotations] == ["depth: |γ| < 0.01", "width: |γ| < 0.01",
                                                        "depth: |γ| < 0.1", "width: |γ| < 0.1"]
    # resnet-8 is wrn-8-1: in both; no line from a deep to a wide network
    assert list(six.layout.xaxis2.categoryarray) == ["resnet-8", "wrn-8-2"]


def test_paper_values_are_drawn_beside_ours(store):
    """Figure 6 carries the fractions the paper states as stars in the mode's colour (ResNet-14:
    3% of γ below 0.1 when all trains, 24% below 0.01 when only BatchNorm does), and the
    initialisation bars name inits as the paper does."""
    from bnlib import claims, style

    runs = book.with_labels(results.load(store))
    paper = claims.paper_values("gamma_frac_abs_below").set_index(["model", "mode", "threshold"])["paper"]
    assert paper[("resnet-14", "All", 0.1)] == 0.03 and paper[("resnet-14", "BN", 0.01)] == 0.24
    six = figures.gamma_fractions_by_network(analysis.gamma_table(runs), ["resnet-8", "resnet-14"], "mode")
    stars = sorted((list(t.x), list(t.y), t.marker.color) for t in six.data if t.legendgroup == "paper")
    assert stars == sorted([(["resnet-14"], [3.0], style.mode_colour("All")),
                            (["resnet-14"], [24.0], style.mode_colour("BN"))])
    assert [t.showlegend for t in six.data if t.legendgroup == "paper"].count(True) == 1  # one "paper" entry
    summary = analysis.replicate_summary(runs.assign(bn_init="ones"), ["model", "mode", "bn_init"])
    bars = figures.init_bars(summary, runs, "bn_init", "Figure A3")
    assert {tuple(t.x) for t in bars.data} == {("γ=1",)} and {a.text for a in bars.layout.annotations} == {"resnet-8", "resnet-14"}
    assert {t.marker.color for t in bars.data if t.name == "BN"} == {style.mode_colour("BN")}


def test_learning_curves_label_a_run_that_stopped_early(store):
    metrics = book.with_labels(results.load_metrics(store))
    metrics = metrics.assign(epochs=3)  # planned 3, reached 1
    fig = figures.learning_curves(metrics, "Figure 3")
    assert all("stopped after epoch 1 of 3" in t.name for t in fig.data)
    colours = {t.name.split()[1]: t.line.color for t in fig.data}
    assert colours["BN"] == "#d62728" and colours["All"] == "#1f77b4"



def test_no_legend_outgrows_its_figure(store):
    """At the paper's size (six modes, every network of a series, every threshold), each figure
    keeps its legend short enough to show whole (no scrolling): modes are colours, networks and
    thresholds are panels or the x axis."""
    from bnlib.experiments import PROFILES

    runs = book.with_labels(results.load(store))
    networks = list(PROFILES["paper"].deep + PROFILES["paper"].wide)
    modes = ["All", "BN", "BN+S+O", "S+O", "None", "γ/β frozen"]
    many = pd.concat([runs.iloc[:1].assign(model=n, mode=m, **{"frac_below_0.01": 0.1, "frac_below_0.1": 0.3})
                      for n in networks for m in modes], ignore_index=True)
    summary = analysis.replicate_summary(many, ["model", "mode"])
    built = [figures.accuracy_by_network(summary, many, "mode", "Figure 2", networks),
             figures.gamma_fractions_by_network(many, networks, "mode")]
    plan = Plan.from_parameters("smoke", runs_dir=str(store))
    curves = book.clamping_curves(plan, runs)
    curves = pd.concat([curves.assign(model=n, mode=m) for n in networks[:6] for m in modes[:2]], ignore_index=True)
    built.append(figures.clamping_lines(curves, runs))
    for fig in built:
        assert figures.legend_entries(fig) <= figures.LEGEND_ENTRIES, fig.layout.title.text
