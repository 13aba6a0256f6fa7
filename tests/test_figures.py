"""bnlib.figures: the paper's figures build from results tables, here a store written as plain
files (``tests/stores.py``) with Figure 7's curves stored in its run folders."""

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
    assert len(figures.accuracy_vs_bn_parameters(bn, runs).data) == 2  # the deep series: points and its fit
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
    for trace in lines.data:
        mode = "BN+S+O" if "BN+S+O" in trace.name else "BN" if " BN:" in trace.name else "All"
        assert trace.line.color == style.mode_colour(mode) or trace.marker.color == style.mode_colour(mode)
        if "binarised" in trace.name:
            assert trace.mode == "markers" and len(trace.x) == 1
    symbols = {t.name.split()[0]: t.marker.symbol for t in lines.data if t.name.endswith(": clamped")}
    assert symbols["resnet-8"] != symbols["resnet-14"]
    assert all(min(t.x) > 0 for t in lines.data if t.name.endswith(": clamped"))  # 0 cannot sit on a log axis
    metrics = book.with_labels(results.load_metrics(store))
    curve = figures.accuracy_curves(metrics, "mode", "Figure 3")
    assert all(t.mode == "markers" for t in curve.data if t.name)  # one epoch: no learning curve drawn
    wide = runs.assign(frac_below_0_01=0.1, frac_below_0_1=0.3)
    six = figures.gamma_fractions_by_network(wide, ["resnet-8", "resnet-14", "wrn-8-2"], "mode")
    assert [a.text for a in six.layout.annotations] == ["depth", "width"]  # resnet-8 is wrn-8-1: in both
    assert list(six.layout.xaxis2.categoryarray) == ["resnet-8"]  # no line from a deep to a wide network


def test_paper_values_are_drawn_beside_ours(store):
    """Figure 6 carries the fractions the paper states as stars in the mode's colour (ResNet-14:
    3% of γ below 0.1 when all trains, 24% below 0.01 when only BatchNorm does), and the
    initialisation bars name inits as the paper does."""
    from bnlib import claims, style

    runs = book.with_labels(results.load(store))
    paper = claims.paper_values("gamma_frac_abs_below").set_index(["model", "mode", "threshold"])["paper"]
    assert paper[("resnet-14", "All", 0.1)] == 0.03 and paper[("resnet-14", "BN", 0.01)] == 0.24
    six = figures.gamma_fractions_by_network(analysis.gamma_table(runs), ["resnet-8", "resnet-14"], "mode")
    stars = {t.name: (list(t.x), list(t.y), t.marker.color) for t in six.data if t.name.startswith("paper")}
    assert stars == {"paper: All, |γ| < 0.1": (["resnet-14"], [3.0], style.mode_colour("All")),
                     "paper: BN, |γ| < 0.01": (["resnet-14"], [24.0], style.mode_colour("BN"))}
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

