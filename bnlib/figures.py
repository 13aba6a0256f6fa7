"""The paper's figures as plotly figures built from results DataFrames.

Each function takes tables from :mod:`bnlib.results` / :mod:`bnlib.analysis` and returns a
``plotly.graph_objects.Figure``, so the same figure renders in the book, in a live notebook
and in a test. Every figure carries the scale and data source of what it shows in its title.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import analysis
from .style import TEMPLATE, dash, init_name, marker, mode_colour, mode_name


CURVE_POINTS = 3  # fewer points are drawn as markers: two dots joined by a line are not a curve
LEGEND_ENTRIES = 12  # more than this scroll out of a figure of the default height


def _title(text: str, runs: pd.DataFrame) -> dict:
    return {"text": f"{text}<br><sup>ours: {analysis.scale_note(runs)}</sup>"}


def _drawn(points: int, line: str = "lines+markers") -> str:
    return line if points >= CURVE_POINTS else "markers"


def legend_entries(fig: go.Figure) -> int:
    """How many entries a figure's legend has (a legend group counts once)."""
    groups, count = set(), 0
    for trace in fig.data:
        if trace.showlegend is False or (trace.showlegend is None and len(fig.data) == 1):
            continue
        if trace.legendgroup:
            if trace.legendgroup in groups:
                continue
            groups.add(trace.legendgroup)
        count += 1
    return count


def accuracy_by_network(summary: pd.DataFrame, runs: pd.DataFrame, series: str, title: str,
                        networks: list[str]) -> go.Figure:
    """Figures 1, 2, A1, A3: mean test accuracy (± std over seeds) per network, a line per
    ``series`` value (e.g. the training mode)."""
    fig = go.Figure()
    for label, part in summary.groupby(series, sort=False):
        part = part.set_index("model").reindex([n for n in networks if n in set(part["model"])])
        fig.add_trace(go.Scatter(
            x=part.index, y=part["mean"], error_y={"type": "data", "array": part["std"]},
            mode=_drawn(len(part)), name=mode_name(label), offsetgroup=str(label),
            line={"color": mode_colour(label)}, marker={"color": mode_colour(label), "size": 8},
            customdata=part["n"], hovertemplate="%{x}: %{y:.2f}% (n=%{customdata})<extra>" + str(label) + "</extra>",
        ))
    _paper_markers(fig, networks, [str(label) for label in summary[series].unique()])
    # each mode in a lane of its own at every network (the paper's star in its mode's lane, drawn
    # after ours, so on top): two modes with close values no longer hide each other
    fig.update_layout(title=_title(title, runs), xaxis_title="network", yaxis_title="test accuracy (%)",
                      xaxis={"categoryorder": "array", "categoryarray": networks}, template=TEMPLATE,
                      scattermode="group", scattergap=0.5)
    return fig


def _paper_markers(fig: go.Figure, networks: list[str], modes: list[str]) -> None:
    """The paper's own values (data/paper/claims.csv) as hollow stars, one per network and mode
    it states, in the mode's colour."""
    from .claims import paper_values

    paper = paper_values("accuracy")
    paper = paper[paper["model"].isin(networks) & paper["mode"].isin(modes)]
    for mode, part in paper.groupby("mode", sort=False):
        fig.add_trace(go.Scatter(x=part["model"], y=part["paper"], mode="markers", name=f"paper: {mode_name(mode)}",
                                 offsetgroup=str(mode),
                                 marker={"symbol": "star-open", "size": 13, "color": mode_colour(mode),
                                         "line": {"width": 2, "color": mode_colour(mode)}},
                                 hovertemplate="paper, %{x}: %{y:.1f}%<extra>" + mode_name(mode) + "</extra>"))


def learning_curves(metrics: pd.DataFrame, title: str) -> go.Figure:
    """Figure 3 at full length: test accuracy over training, a line per network and mode (colour
    the mode, dash the network), mean over seeds; a run that stopped before its last epoch is
    labelled with the epoch it reached. The learning-rate drops show as jumps."""
    fig = go.Figure()
    networks = list(dict.fromkeys(metrics["model"]))
    for (model, mode), part in metrics.groupby(["model", "mode"], sort=False):
        stats = part.groupby("epoch")["test_accuracy"].mean()
        planned, reached = int(part["epochs"].max()), int(stats.index.max())
        note = f" (stopped after epoch {reached} of {planned})" if reached < planned else ""
        fig.add_trace(go.Scatter(x=stats.index, y=stats.values, mode="lines" if len(stats) > 2 else "markers",
                                 name=f"{model} {mode_name(mode)}{note}",
                                 line={"color": mode_colour(mode), "dash": dash(networks.index(model))},
                                 marker={"color": mode_colour(mode), "symbol": marker(networks.index(model))}))
    if len(metrics):  # the longest run's learning-rate drops (bnlib.train.learning_rate's schedule)
        from .train import lr_drop_fractions

        longest = metrics.loc[metrics["epochs"].idxmax()]
        for fraction in lr_drop_fractions(longest["lr_drops"]):
            after = math.ceil(fraction * longest["epochs"])
            fig.add_vline(x=after + 0.5, line={"dash": "dot", "color": "grey", "width": 1},
                          annotation_text=f"lr ÷ 10 after epoch {after}", annotation_font_size=10)
    # the legend names each line and where a stopped run stopped, even for a single line
    fig.update_layout(title=_title(title, metrics), xaxis_title="epoch", yaxis_title="test accuracy (%)",
                      template=TEMPLATE, showlegend=True)
    return fig


def accuracy_curves(metrics: pd.DataFrame, series: str, title: str) -> go.Figure:
    """Figure 3: test accuracy over training, mean ± std band over seeds, a line per ``series``."""
    fig = go.Figure()
    for label, part in metrics.groupby(series, sort=False):
        stats = part.groupby("epoch")["test_accuracy"].agg(["mean", "std"]).fillna(0.0).reset_index()
        color = mode_colour(label)
        # two epochs are two points, not a learning curve: drawn as markers
        fig.add_trace(go.Scatter(x=stats["epoch"], y=stats["mean"], name=mode_name(label),
                                 mode="lines" if len(stats) > 2 else "markers",
                                 line={"color": color}, marker={"color": color, "size": 8}))
        band = pd.concat([stats["mean"] + stats["std"], (stats["mean"] - stats["std"])[::-1]])
        fig.add_trace(go.Scatter(x=pd.concat([stats["epoch"], stats["epoch"][::-1]]), y=band, fill="toself",
                                 line={"width": 0}, opacity=0.2, showlegend=False, hoverinfo="skip",
                                 fillcolor=color))
    fig.update_layout(title=_title(title, metrics), yaxis_title="test accuracy (%)", template=TEMPLATE,
                      xaxis={"title": "epoch", "dtick": max(1, int(metrics["epoch"].max()) // 8) if len(metrics) else 1})
    return fig


def accuracy_vs_bn_parameters(summary: pd.DataFrame, runs: pd.DataFrame) -> go.Figure:
    """Figure 4: BatchNorm-only accuracy against BatchNorm parameter count (log2 axis), the
    deep and the wide series each with its least-squares line and slope per doubling."""
    fig = go.Figure()
    series = analysis.depth_width_series(summary)
    labels = {"deep": "depth (resnet-N)", "wide": "width (wrn-14-W)"}
    for (kind, part), color in zip(series.items(), ("#444444", "#d62728")):
        if part.empty:
            continue
        label = labels[kind]
        x = part["network"].map(analysis.batchnorm_parameters)
        fig.add_trace(go.Scatter(x=x, y=part["mean"], error_y={"type": "data", "array": part["std"]},
                                 mode="markers", name=label, text=part["model"], marker={"color": color}))
        if len(part) >= CURVE_POINTS:  # the paper fits a line; fewer points cannot carry one
            slope, intercept = analysis.doubling_slope(x, part["mean"])
            xs = np.array([x.min(), x.max()], dtype=float)
            fig.add_trace(go.Scatter(x=xs, y=intercept + slope * np.log2(xs), mode="lines", line={"color": color,
                                     "dash": "dash"}, name=f"{label}: {slope:+.2f} points per doubling"))
    # ticks at the networks drawn, named: a log axis's own minor labels overlap over one decade
    ticks = sorted({(analysis.batchnorm_parameters(n), n) for part in series.values() for n in part["network"]})
    fig.update_layout(title=_title("Figure 4: accuracy against BatchNorm parameters (BN only)", runs),
                      xaxis={"type": "log", "title": "BatchNorm parameters", "tickvals": [t for t, _ in ticks],
                             "ticktext": [f"{n}<br>{t:,}" for t, n in ticks]},
                      yaxis_title="test accuracy (%)", template=TEMPLATE)
    return fig


def init_bars(summary: pd.DataFrame, runs: pd.DataFrame, column: str, title: str,
              x_title: str | None = None) -> go.Figure:
    """Appendices C and D: mean test accuracy (± std over seeds) per initialisation
    (``column``: ``bn_init`` or ``feature_init``, named as the paper names them), a bar per
    training mode in its colour, a panel per network."""
    from plotly.subplots import make_subplots

    networks = list(dict.fromkeys(summary["model"]))
    fig = make_subplots(rows=1, cols=max(1, len(networks)), shared_yaxes=True, subplot_titles=networks)
    for col, network in enumerate(networks, start=1):
        for label, bars in summary[summary["model"] == network].groupby("mode", sort=False):
            fig.add_trace(go.Bar(x=[init_name(column, n) for n in bars[column]], y=bars["mean"],
                                 error_y={"type": "data", "array": bars["std"]}, name=mode_name(label),
                                 legendgroup=str(label), showlegend=col == 1, marker={"color": mode_colour(label)},
                                 customdata=bars["n"],
                                 hovertemplate="%{x}: %{y:.1f}% (n=%{customdata})<extra>" + str(label) + "</extra>"),
                          row=1, col=col)
        fig.update_xaxes(title_text=x_title or ("BatchNorm initialisation" if column == "bn_init"
                                                else "feature initialisation"), row=1, col=col)
    fig.update_yaxes(title_text="test accuracy (%)", row=1, col=1)
    fig.update_layout(barmode="group", title=_title(title, runs), template=TEMPLATE)
    return fig


def gamma_beta_histograms(tables: dict[str, pd.DataFrame], runs: pd.DataFrame, network: str) -> go.Figure:
    """Figure 5: the distributions of gamma (left) and beta (right), pooled over layers, one
    colour per training mode; ``tables`` maps a mode label to concatenated batchnorm.csv rows."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("γ", "β"))
    for label, bn in tables.items():
        for col, column in ((1, "gamma"), (2, "beta")):
            fig.add_trace(go.Histogram(x=bn[column], name=mode_name(label), legendgroup=label, showlegend=col == 1,
                                       marker={"color": mode_colour(label)}, opacity=0.6, nbinsx=80,
                                       histnorm="probability"), row=1, col=col)
    fig.update_layout(barmode="overlay", template=TEMPLATE, yaxis_title="fraction of channels",
                      title=_title(f"Figure 5: γ and β of {network}", runs))
    fig.update_xaxes(title_text="γ", row=1, col=1)
    fig.update_xaxes(title_text="β", row=1, col=2)
    return fig


def gamma_fractions_by_network(table: pd.DataFrame, networks: list[str], label_column: str) -> go.Figure:
    """Figure 6: the fraction of |gamma| under each threshold per network, a row of panels per
    threshold and, as in the paper, depth and width in separate columns; colour is the training
    mode (one legend entry each), the paper's values hollow stars in the mode's colour."""
    from plotly.subplots import make_subplots

    columns = [c for c in table.columns if c.startswith("frac_below_")]
    series = analysis.depth_width_series(pd.DataFrame({"model": networks}))
    panels = [(kind, [n for n in part["model"] if n in set(table["model"])]) for kind, part in series.items()]
    panels = [(kind, nets) for kind, nets in panels if nets]
    if len(panels) == 2 and not set(panels[1][1]) - set(panels[0][1]):
        panels = panels[:1]  # the wide series holds only ResNet-14, which the deep one shows
    thresholds = [c.removeprefix("frac_below_") for c in columns]
    fig = make_subplots(rows=max(1, len(columns)), cols=max(1, len(panels)), shared_xaxes="columns",
                        shared_yaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"{'depth' if k == 'deep' else 'width'}: |γ| < {t}"
                                        for t in thresholds for k, _ in panels])
    for row, (column, threshold) in enumerate(zip(columns, thresholds), start=1):
        for col, (kind, nets) in enumerate(panels, start=1):
            first = row == 1 and col == 1
            for label, part in table.groupby(label_column, sort=False):
                means = part.groupby("model")[column].mean().reindex([n for n in nets if n in set(part["model"])])
                fig.add_trace(go.Scatter(
                    x=means.index, y=100 * means, mode=_drawn(len(means)), name=mode_name(label),
                    legendgroup=str(label), showlegend=first, line={"color": mode_colour(label)},
                    marker={"color": mode_colour(label), "size": 8}), row=row, col=col)
            _paper_fractions(fig, nets, [str(label) for label in table[label_column].unique()], float(threshold),
                             row, col)
            fig.update_xaxes(categoryorder="array", categoryarray=nets, row=row, col=col)
        fig.update_yaxes(title_text="γ below (%)", row=row, col=1)
    for col in range(1, len(panels) + 1):
        fig.update_xaxes(title_text="network", row=max(1, len(columns)), col=col)
    fig.update_layout(title=_title("Figure 6: fraction of γ below each threshold", table), template=TEMPLATE,
                      height=260 + 200 * max(1, len(columns)))
    return fig


def _paper_fractions(fig: go.Figure, networks: list[str], modes: list[str], threshold: float, row: int,
                     col: int) -> None:
    """The fractions of small |γ| the paper states (claims.csv) for one threshold, as hollow
    stars in the mode's colour, in one panel of a Figure 6 (one legend entry: "paper")."""
    from .claims import paper_values

    paper = paper_values("gamma_frac_abs_below")
    paper = paper[paper["model"].isin(networks) & paper["mode"].isin(modes) & np.isclose(paper["threshold"], threshold)]
    for one in paper.itertuples():
        fig.add_trace(go.Scatter(x=[one.model], y=[100 * one.paper], mode="markers", name="paper (stars)",
                                 legendgroup="paper", showlegend=not any(t.legendgroup == "paper" for t in fig.data),
                                 marker={"symbol": "star-open", "size": 13, "color": mode_colour(one.mode),
                                         "line": {"width": 2, "color": mode_colour(one.mode)}},
                                 hovertemplate=f"paper, %{{x}}, {mode_name(one.mode)}: %{{y:.0f}}% below "
                                               f"{threshold:g}<extra></extra>"),
                      row=row, col=col)


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
            out.append(go.Bar(x=stats.index, y=stats["accuracy"], name=mode_name(label), marker={"color": mode_colour(label)},
                              customdata=100 * stats["fraction"],
                              hovertemplate="%{x}: %{y:.2f}%, %{customdata:.0f}% of γ clamped<extra>"
                                            + label + "</extra>"))
        return out

    fig = go.Figure(data=bars(thresholds[0]), frames=[go.Frame(data=bars(t), name=f"{t:g}") for t in thresholds])
    fig.update_layout(
        title=_title("Figure 7: accuracy after clamping |γ| < threshold to 0", runs), barmode="group",
        yaxis={"title": "test accuracy (%)", "range": [0, 100]}, template=TEMPLATE,
        sliders=[{"currentvalue": {"prefix": "threshold: "}, "steps": [
            {"label": f"{t:g}", "method": "animate",
             "args": [[f"{t:g}"], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}]}
            for t in thresholds]}],
    )
    return fig


def clamping_lines(curves: pd.DataFrame, runs: pd.DataFrame) -> go.Figure:
    """Figure 7 as lines: accuracy against the clamping threshold (log axis), a panel per
    network, colour the mode (one legend entry each); the unclamped accuracy (threshold 0) is a
    dotted line in the mode's colour. Binarising γ is a single evaluation per run, read in a
    table (:func:`bnlib.book.binarised_table`), not drawn here."""
    from plotly.subplots import make_subplots

    networks = list(dict.fromkeys(curves["model"]))
    fig = make_subplots(rows=1, cols=max(1, len(networks)), shared_yaxes=True, subplot_titles=networks)
    for col, model in enumerate(networks, start=1):
        for mode, part in curves[curves["model"] == model].groupby("mode", sort=False):
            colour = mode_colour(mode)
            clamped = part[part["keep"] == "value"].groupby("threshold")["test_accuracy"].mean()
            positive = clamped[clamped.index > 0]
            fig.add_trace(go.Scatter(x=positive.index, y=positive.values, mode=_drawn(len(positive)),
                                     name=mode_name(mode), legendgroup=str(mode),
                                     showlegend=not any(t.legendgroup == str(mode) for t in fig.data),
                                     line={"color": colour}, marker={"color": colour, "size": 8},
                                     hovertemplate=f"{model} {mode_name(mode)}, |γ| < %{{x}}: %{{y:.2f}}%<extra></extra>"),
                          row=1, col=col)
            if 0.0 in clamped.index and len(positive):
                fig.add_trace(go.Scatter(x=[positive.index.min(), positive.index.max()], y=[clamped[0.0]] * 2,
                                         mode="lines", line={"color": colour, "dash": "dot"}, name="unclamped (dotted)",
                                         legendgroup="unclamped",
                                         showlegend=not any(t.legendgroup == "unclamped" for t in fig.data),
                                         hovertemplate=f"{model} {mode_name(mode)} unclamped: %{{y:.2f}}%<extra></extra>"),
                              row=1, col=col)
        fig.update_xaxes(type="log", title_text="|γ| below (log)", row=1, col=col)
    fig.update_yaxes(title_text="test accuracy (%)", row=1, col=1)
    fig.update_layout(title=_title("Figure 7: accuracy after clamping small γ to 0", runs), template=TEMPLATE)
    return fig


def scale_bridge(table: pd.DataFrame, value: str, title: str, axis: str,
                 paper: pd.DataFrame | None = None) -> go.Figure:
    """A quantity against training length (log2 epochs), a line per network and mode (colour the
    mode, marker the network), mean over seeds with each seed as a faint point; the paper's
    value (``paper``: model, mode, value) as a hollow star at 160 epochs."""
    fig = go.Figure()
    networks = list(dict.fromkeys(table["model"]))
    for (model, mode), part in table.groupby(["model", "mode"], sort=False):
        colour, symbol = mode_colour(mode), marker(networks.index(model))
        means = part.groupby("epochs")[value].mean()
        fig.add_trace(go.Scatter(x=means.index, y=means.values, mode=_drawn(len(means)),
                                 name=f"{model} {mode_name(mode)}", line={"color": colour},
                                 marker={"symbol": symbol, "color": colour, "size": 9}))
        if part["seed"].nunique() > 1:
            fig.add_trace(go.Scatter(x=part["epochs"], y=part[value], mode="markers", opacity=0.35, showlegend=False,
                                     marker={"symbol": symbol, "color": colour, "size": 6}, hoverinfo="skip"))
    if paper is not None:
        for row in paper.itertuples():
            fig.add_trace(go.Scatter(x=[160], y=[row.value], mode="markers", name=f"paper: {row.model} {mode_name(row.mode)}",
                                     marker={"symbol": "star-open", "size": 14, "color": mode_colour(row.mode),
                                             "line": {"width": 2, "color": mode_colour(row.mode)}}))
    ticks = sorted(set(table["epochs"]) | ({160} if paper is not None else set()))
    fig.update_layout(title=_title(title, table.assign(epochs=table["epochs"])), yaxis_title=axis, template=TEMPLATE,
                      xaxis={"type": "log", "title": "training epochs (log scale)", "tickvals": ticks,
                             "ticktext": [str(t) for t in ticks]})
    return fig

