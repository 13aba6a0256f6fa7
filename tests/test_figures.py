"""bnlib.figures: the paper's figures build from results tables, here a store written as plain
files (``tests/stores.py``) with Figure 7's curves stored in its run folders."""

from bnlib import analysis, book, figures, results
from bnlib.plan import Plan


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
