"""What a chapter shows of one figure at one scale: each function draws a section from one
store's runs (``source``: that store's plan, ``runs``: its runs of the figure, labelled), so a
chapter draws the same section for its largest scale and, folded away below it, for the
smaller ones (:func:`bnlib.book.by_scale`, :func:`bnlib.book.show_scales`). Every section ends
with its conclusion, computed from the store (:func:`bnlib.book.conclusion_lines`)."""

from __future__ import annotations

import pandas as pd
from IPython.display import display

from . import analysis, book, figures, results
from .experiments import ABLATIONS
from .plan import Plan

FIT_POINTS = 3  # a line fitted through fewer points says nothing a reader cannot see


def present(source: Plan, runs: pd.DataFrame, series: str = "all") -> list[str]:
    """The networks of a plan's series that have runs here, in the series' order."""
    have = set(runs["model"])
    return [n for n in source.networks(series) if n in have]


def _series(source: Plan, runs: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """The deep and wide series with runs here; the wide one only where it has a network of
    its own (it starts at ResNet-14, which the deep series already shows)."""
    deep, wide = present(source, runs, "deep"), present(source, runs, "wide")
    return [(name, nets) for name, nets in (("deep", deep), ("wide", wide))
            if nets and (name == "deep" or set(nets) - set(deep))]


def conclude(source: Plan, figures_: tuple[str, ...], ids: str = "") -> None:
    lines = book.conclusion_lines(source, figures_, ids)
    print("\n".join(lines) if lines else "No claim of this section is answered by these runs yet.")


def figure1(source: Plan, runs: pd.DataFrame) -> None:
    """Figure 1: All against γ and β frozen, per network."""
    summary = analysis.replicate_summary(runs, ["model", "mode"])
    display(book.table(summary.pivot(index="model", columns="mode", values="mean")
                       .reindex(present(source, runs)).reset_index()))
    for series, nets in _series(source, runs):
        figures.accuracy_by_network(summary, runs, "mode", f"Figure 1 ({series}): γ and β enabled vs frozen",
                                    nets).show()
    conclude(source, ("Figure 1",))


def figure2(source: Plan, runs: pd.DataFrame) -> None:
    """Figures 2 and 4: accuracy per network in every mode, the trends, and the slope per
    doubling of BatchNorm parameters where a series has enough networks to fit one."""
    summary = analysis.replicate_summary(runs, ["model", "mode"])
    display(book.table(summary.pivot(index="model", columns="mode", values="mean")
                       .reindex(present(source, runs)).reset_index()))  # test accuracy (%), mean over seeds
    for series, nets in _series(source, runs):
        figures.accuracy_by_network(summary, runs, "mode", f"Figure 2 ({series})", nets).show()
        for mode in ("All", "BN", "BN+S+O", "S+O", "None"):
            if mode in set(summary["mode"]):
                print(series, book.trend(summary, mode, nets))
    bn_only = summary[(summary["mode"] == "BN") & (summary["n"] > 0)]
    counts = {kind: len(part) for kind, part in analysis.depth_width_series(bn_only).items()}
    if max(counts.values(), default=0) >= FIT_POINTS:
        slopes = {k: v for k, v in analysis.depth_width_slopes(bn_only).items() if counts[k] >= FIT_POINTS}
        print("Figure 4:", ", ".join(f"{k} {v:+.2f}" for k, v in slopes.items()), "points per doubling")
        if len(slopes) == 2:
            print(f"depth / width slope: {slopes['deep'] / slopes['wide']:.2f} (paper: 1.17)")
    else:
        print(f"Figure 4 fits a line through at least {FIT_POINTS} networks of a series; BN-only runs here: "
              + ", ".join(f"{n} {k}" for k, n in counts.items()) + ": the points are drawn without a fit.")
    if len(bn_only):
        figures.accuracy_vs_bn_parameters(bn_only, runs).show()
    conclude(source, ("Figure 2", "Figure 4"))


def figure3(source: Plan, runs: pd.DataFrame) -> None:
    """Figure 3: test accuracy during training of the case-study network (or, where it has no
    runs here, the deepest network that has), All, BN and BN+S+O under the default
    initialisations, runs stopped before their last epoch included (each says where it stopped)."""
    metrics = book.default_inits(book.with_labels(results.load_metrics(source.store)))
    if len(metrics):
        metrics = metrics[metrics["model"].isin(source.networks()) & metrics["mode"].isin(["All", "BN", "BN+S+O"])]
    if metrics.empty:
        print("No learning curve of All, BN or BN+S+O here.")
        return
    case = source.case_study() if source.case_study() in set(metrics["model"]) else present(source, metrics)[-1]
    figures.learning_curves(metrics[metrics["model"] == case],
                            f"Figure 3: test accuracy of {case} during training").show()


def network(source: Plan, runs: pd.DataFrame) -> None:
    """A network page at one scale: the learning curve of every mode, γ and β of its All and
    BN-only runs, what clamping γ costs them, the paper's claims about it that this store
    answers, and what the runs cost. Figures use the default initialisations only (as the
    chapters do, so that a number reads the same here and there); Appendices C-E's runs are
    counted in the table of what was run."""
    name = str(runs["model"].iloc[0])
    default = book.default_inits(runs)
    metrics = book.default_inits(book.with_labels(results.load_metrics(source.store)))
    metrics = metrics[metrics["model"] == name] if len(metrics) else metrics
    if len(metrics):
        figures.learning_curves(metrics, f"{name}: test accuracy during training (every mode)").show()
    both = default[default["mode"].isin(["All", "BN"])]
    pooled = book.pooled_batchnorm(both, name)
    if pooled:
        figures.gamma_beta_histograms(pooled, both, name).show()
    curves = book.clamping_curves(source, both)
    if len(curves):
        display(book.clamped_table(curves))
        figures.clamping_lines(curves, both).show()
    from . import claims

    board = claims.of_store(source.store)
    mine = claims.load_claims()
    about = board[board["id"].isin(set(mine.loc[mine["network"] == name, "id"]))]
    answered = about[about["holds"] != "not run"]
    if len(answered):
        display(book.claims_table(answered, source))
    if len(about):
        left = about.loc[about["holds"] == "not run", "id"]
        print(f"These runs answer {len(answered)} of the paper's {len(about)} claim(s) about {name}"
              + (f"; not yet: {', '.join(left)}." if len(left) else "."))
    else:
        print(f"The paper states no claim about {name} alone; the chapters compare it with the other networks.")
    display(book.inventory_table(analysis.run_inventory(runs)))


def figures5_6(source: Plan, runs: pd.DataFrame) -> None:
    """Figures 5 and 6: the statistics of γ and β per network and mode, their distributions
    (default initialisations only: the runs of Figure 2), and the fractions of small γ."""
    table = analysis.gamma_table(runs)
    display(book.gamma_stats(table))
    nets = present(source, runs)
    # the case study; else the deepest network with both modes to compare (else the deepest)
    finished = runs[runs["status"] == "complete"]
    both = [n for n in nets if {"All", "BN"} <= set(finished.loc[finished["model"] == n, "mode"])]
    case = source.case_study() if source.case_study() in both else (both or nets)[-1]
    figures.gamma_beta_histograms(book.pooled_batchnorm(runs, case), runs[runs["model"] == case], case).show()
    versus = book.gamma_stats_vs_paper(table, case)
    if len(versus.data):  # the statistics the paper reports for this network, beside ours
        display(versus)
    figures.gamma_fractions_by_network(table, nets, "mode").show()
    conclude(source, ("Figure 5", "Figure 6"))


def figure7(source: Plan, runs: pd.DataFrame) -> None:
    """Figure 7 and Section 5: accuracy after clamping small γ to 0 (a table with the share of γ
    clamped, a slider, lines per network) and after binarising the rest."""
    curves = book.clamping_curves(source, runs)
    if curves.empty:
        print("No clamping curve here (the runs' weights are not in this store).")
        return
    display(book.clamped_table(curves))
    figures.clamping_slider(curves, runs, present(source, curves)).show()
    figures.clamping_lines(curves, runs).show()
    display(book.binarised_table(curves))
    conclude(source, ("Figure 7", "Section 5"))


def ablation(source: Plan, runs: pd.DataFrame) -> None:
    """Appendix E: γ, β and normalisation switched on and off."""
    labels = {(mode, norm): label for label, mode, norm in ABLATIONS}
    runs = runs.assign(ablation=[labels.get((t, bool(n)), t) for t, n in zip(runs["trainable"], runs["normalize"])])
    summary = analysis.replicate_summary(runs, ["model", "ablation"])
    display(book.table(summary.rename(columns={"mean": "test accuracy (%)", "std": "std over seeds", "n": "seeds"})))
    figures.init_bars(summary.assign(mode=summary["ablation"]), runs, "ablation", "Appendix E: γ, β and normalisation",
                      x_title="what trains").show()  # bars: one network is one category, not a line
    conclude(source, ("Figure A1",))


def feature_inits(source: Plan, runs: pd.DataFrame) -> None:
    """Appendix C: BatchNorm-only accuracy per feature initialisation."""
    summary = analysis.replicate_summary(runs, ["model", "mode", "feature_init"])
    figures.init_bars(summary, runs, "feature_init", "Figure A2: feature initialisation (Appendix C)").show()
    display(book.table(book.named_inits(summary).rename(columns={"mean": "test accuracy (%)",
                                                                 "std": "std over seeds", "n": "seeds"})))
    conclude(source, ("Figure A2",), ids="feature-init")


def bn_inits(source: Plan, runs: pd.DataFrame) -> None:
    """Appendix D: accuracy per BatchNorm initialisation in All and BN-only modes, and γ after
    training (Figure A4's question)."""
    summary = analysis.replicate_summary(runs, ["model", "mode", "bn_init"])
    display(book.table(book.named_inits(summary).pivot_table(index=["model", "BatchNorm init"], columns="mode",
                                                             values="mean").reset_index()))
    figures.init_bars(summary, runs, "bn_init", "Figure A3: BatchNorm initialisation (Appendix D)").show()
    display(book.gamma_stats(analysis.gamma_table(runs), by=("model", "mode", "bn_init")))
    conclude(source, ("Figure A3",), ids="bn-init|beta-one")
