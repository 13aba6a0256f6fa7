"""The paper's figures as plotly figures built from results DataFrames.

Each function takes tables from :mod:`bnlib.results` / :mod:`bnlib.analysis` and returns a
``plotly.graph_objects.Figure``, so the same figure renders in the book, in a live notebook
and in a test. Every figure carries the scale and data source of what it shows in its title.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import analysis

PALETTE = {  # the paper's colours where it has them
    "All": "#1f77b4", "None": "#2ca02c", "BN": "#d62728", "BN+S+O": "#e6b800", "S+O": "#7f7f7f",
    "gamma/beta frozen": "#9467bd",
}


def _title(text: str, runs: pd.DataFrame) -> dict:
    return {"text": f"{text}<br><sup>ours: {analysis.scale_note(runs)}</sup>"}


def accuracy_by_network(summary: pd.DataFrame, runs: pd.DataFrame, series: str, title: str,
                        networks: list[str]) -> go.Figure:
    """Figures 1, 2, A1, A3: mean test accuracy (± std over seeds) per network, a line per
    ``series`` value (e.g. the training mode)."""
    fig = go.Figure()
    for label, part in summary.groupby(series, sort=False):
        part = part.set_index("model").reindex([n for n in networks if n in set(part["model"])])
        fig.add_trace(go.Scatter(
            x=part.index, y=part["mean"], error_y={"type": "data", "array": part["std"]},
            mode="lines+markers", name=str(label), line={"color": PALETTE.get(str(label))},
            customdata=part["n"], hovertemplate="%{x}: %{y:.2f}% (n=%{customdata})<extra>" + str(label) + "</extra>",
        ))
    fig.update_layout(title=_title(title, runs), xaxis_title="network", yaxis_title="test accuracy (%)",
                      xaxis={"categoryorder": "array", "categoryarray": networks}, template="plotly_white")
    return fig


def accuracy_curves(metrics: pd.DataFrame, series: str, title: str) -> go.Figure:
    """Figure 3: test accuracy over training, mean ± std band over seeds, a line per ``series``."""
    fig = go.Figure()
    for label, part in metrics.groupby(series, sort=False):
        stats = part.groupby("epoch")["test_accuracy"].agg(["mean", "std"]).fillna(0.0).reset_index()
        color = PALETTE.get(str(label))
        fig.add_trace(go.Scatter(x=stats["epoch"], y=stats["mean"], name=str(label), mode="lines",
                                 line={"color": color}))
        band = pd.concat([stats["mean"] + stats["std"], (stats["mean"] - stats["std"])[::-1]])
        fig.add_trace(go.Scatter(x=pd.concat([stats["epoch"], stats["epoch"][::-1]]), y=band, fill="toself",
                                 line={"width": 0}, opacity=0.2, showlegend=False, hoverinfo="skip",
                                 fillcolor=color))
    fig.update_layout(title=_title(title, metrics), xaxis_title="epoch", yaxis_title="test accuracy (%)",
                      template="plotly_white")
    return fig


def accuracy_vs_bn_parameters(summary: pd.DataFrame, runs: pd.DataFrame) -> go.Figure:
    """Figure 4: BatchNorm-only accuracy against BatchNorm parameter count (log2 axis), the
    deep and the wide series each with its least-squares line and slope per doubling."""
    fig = go.Figure()
    series = analysis.depth_width_series(summary)
    labels = {"deep": "depth (resnet-N)", "wide": "width (wrn-14-W)"}
    for (kind, part), color in zip(series.items(), ("#1f77b4", "#d62728")):
        if part.empty:
            continue
        label = labels[kind]
        x = part["network"].map(analysis.batchnorm_parameters)
        fig.add_trace(go.Scatter(x=x, y=part["mean"], error_y={"type": "data", "array": part["std"]},
                                 mode="markers", name=label, text=part["model"], marker={"color": color}))
        if len(part) >= 2:
            slope, intercept = analysis.doubling_slope(x, part["mean"])
            xs = np.array([x.min(), x.max()], dtype=float)
            fig.add_trace(go.Scatter(x=xs, y=intercept + slope * np.log2(xs), mode="lines", line={"color": color,
                                     "dash": "dash"}, name=f"{label}: {slope:+.2f} points per doubling"))
    fig.update_layout(title=_title("Accuracy against BatchNorm parameters (BN only)", runs),
                      xaxis={"type": "log", "title": "BatchNorm parameters"}, yaxis_title="test accuracy (%)",
                      template="plotly_white")
    return fig


def gamma_beta_histograms(tables: dict[str, pd.DataFrame], runs: pd.DataFrame, network: str) -> go.Figure:
    """Figure 5: the distributions of gamma (left) and beta (right), pooled over layers, one
    colour per training mode; ``tables`` maps a mode label to concatenated batchnorm.csv rows."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("γ", "β"))
    for label, bn in tables.items():
        for col, column in ((1, "gamma"), (2, "beta")):
            fig.add_trace(go.Histogram(x=bn[column], name=label, legendgroup=label, showlegend=col == 1,
                                       marker={"color": PALETTE.get(label)}, opacity=0.6, nbinsx=80,
                                       histnorm="probability"), row=1, col=col)
    fig.update_layout(barmode="overlay", template="plotly_white", yaxis_title="fraction of channels",
                      title=_title(f"γ and β of {network}", runs))
    return fig


def gamma_fractions_by_network(table: pd.DataFrame, networks: list[str], label_column: str) -> go.Figure:
    """Figure 6: the fraction of |gamma| under each threshold per network, a line per threshold
    and a dash style per training mode."""
    fig = go.Figure()
    columns = [c for c in table.columns if c.startswith("frac_below_")]
    dashes = ("solid", "dot", "dash", "dashdot")
    for (label, part), dash in zip(table.groupby(label_column, sort=False), dashes * 4):
        means = part.groupby("model")[columns].mean().reindex([n for n in networks if n in set(part["model"])])
        for column in columns:
            fig.add_trace(go.Scatter(x=means.index, y=means[column], mode="lines+markers",
                                     name=f"{label}: |γ| < {column.removeprefix('frac_below_')}",
                                     line={"dash": dash}))
    fig.update_layout(title=_title("Fraction of γ below each threshold", table), xaxis_title="network",
                      yaxis_title="fraction of γ", template="plotly_white",
                      xaxis={"categoryorder": "array", "categoryarray": networks})
    return fig


def clamping_slider(curves: pd.DataFrame, runs: pd.DataFrame, networks: list[str]) -> go.Figure:
    """Figure 7 with a slider: test accuracy of each network after setting every gamma with
    |gamma| below the chosen threshold to 0, a bar per training mode. Works in static HTML:
    every threshold's values are precomputed in the figure."""
    curves = curves[curves["keep"] == "value"]
    thresholds = sorted(curves["threshold"].unique())
    labels = list(dict.fromkeys(curves["mode"]))

    def bars(threshold: float) -> list[go.Bar]:
        at = curves[np.isclose(curves["threshold"], threshold)]
        out = []
        for label in labels:
            stats = at[at["mode"] == label].groupby("model").agg(
                accuracy=("test_accuracy", "mean"), fraction=("fraction_clamped", "mean"))
            stats = stats.reindex([n for n in networks if n in stats.index])
            out.append(go.Bar(x=stats.index, y=stats["accuracy"], name=label, marker={"color": PALETTE.get(label)},
                              customdata=100 * stats["fraction"],
                              hovertemplate="%{x}: %{y:.2f}%, %{customdata:.0f}% of γ clamped<extra>"
                                            + label + "</extra>"))
        return out

    fig = go.Figure(data=bars(thresholds[0]), frames=[go.Frame(data=bars(t), name=f"{t:g}") for t in thresholds])
    fig.update_layout(
        title=_title("Accuracy after clamping |γ| < threshold to 0", runs), barmode="group",
        yaxis={"title": "test accuracy (%)", "range": [0, 100]}, template="plotly_white",
        sliders=[{"currentvalue": {"prefix": "threshold: "}, "steps": [
            {"label": f"{t:g}", "method": "animate",
             "args": [[f"{t:g}"], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}]}
            for t in thresholds]}],
    )
    return fig


def clamping_lines(curves: pd.DataFrame, runs: pd.DataFrame) -> go.Figure:
    """Accuracy against the clamping threshold, a line per network and mode, one dash style per
    way of treating the gammas above the threshold (kept, ±1, ±mean|γ|)."""
    fig = go.Figure()
    dashes = {"value": "solid", "one": "dot", "mean": "dash"}
    names = {"value": "clamped", "one": "binarised ±1", "mean": "binarised ±μ"}
    for (model, mode, keep), part in curves.groupby(["model", "mode", "keep"], sort=False):
        stats = part.groupby("threshold")["test_accuracy"].mean()
        fig.add_trace(go.Scatter(x=stats.index, y=stats.values, mode="lines+markers",
                                 name=f"{model} {mode} {names[keep]}", line={"dash": dashes[keep],
                                 "color": PALETTE.get(mode)}))
    fig.update_layout(title=_title("Clamping and binarising γ", runs), xaxis_title="threshold on |γ|",
                      yaxis_title="test accuracy (%)", template="plotly_white")
    return fig
