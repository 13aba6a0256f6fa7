"""Analyses behind the paper's figures, on results-store DataFrames.

* replicate means and standard deviations (every figure: mean +- std over seeds);
* the slope of accuracy per doubling of BatchNorm parameters (Figure 4);
* gamma/beta statistics and fractions under thresholds (Figures 5 and 6, Appendix D's A4);
* clamping and binarising gamma, then re-evaluating the network (Figure 7).
"""

from __future__ import annotations

import functools

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import data as data_lib
from . import results
from .config import RunConfig
from .architectures import canonical_name, lookup
from .models import build, parameter_counts

GAMMA_THRESHOLDS = (0.01, 0.05, 0.1, 0.2, 0.5)  # Figure 6's x-axis; 0.01 and 0.1 are in the text
# Figure 7's thresholds (0.01 and 0.1 are in the text) and the binarisations' (Section 5 says only
# that they fail). Each is one pass over the test set: 8 in all cost about an epoch of training.
CLAMP_THRESHOLDS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.5)
BINARISE_THRESHOLDS = (0.01,)
CLAMP_COLUMNS = ["keep", "threshold", "fraction_clamped", "test_accuracy", "test_loss"]


@functools.lru_cache(maxsize=None)
def batchnorm_parameters(name: str) -> int:
    """The number of BatchNorm parameters (gamma and beta) of a network, Table 1's column."""
    return parameter_counts(build(name, device="meta"))["batchnorm"]


def replicate_summary(runs: pd.DataFrame, by: list[str], value: str = "test_accuracy") -> pd.DataFrame:
    """Mean, std and count of ``value`` over replicates (seeds) for each ``by`` group.
    Diverged and unfinished runs are left out of the mean; diverged ones are counted in
    ``diverged``. With one seed the std is NaN (no error bar), not 0."""
    if runs.empty:
        return pd.DataFrame(columns=[*by, "mean", "std", "n", "diverged"])
    finished = runs[runs["status"] == "complete"]
    summary = finished.groupby(by, dropna=False)[value].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    diverged = runs[runs["status"] == "diverged"].groupby(by, dropna=False).size().rename("diverged")
    out = summary.join(diverged, how="outer").fillna({"diverged": 0, "n": 0}).reset_index()
    return out.astype({"n": int, "diverged": int})


EXPERIMENT = ["model", "trainable", "bn_init", "feature_init", "normalize"]  # what seeds replicate


def seeds_note(runs: pd.DataFrame) -> str:
    """'3 seed(s)', or '1-3 seeds' when experiments have different numbers of replicates."""
    counts = runs.groupby(EXPERIMENT, dropna=False)["seed"].nunique()
    low, high = int(counts.min()), int(counts.max())
    return f"{low} seed(s)" if low == high else f"{low}-{high} seeds"


def seed_spread(runs: pd.DataFrame) -> pd.DataFrame:
    """How far seeds of one experiment fall apart: per number of epochs, the experiments with
    two seeds or more, and the median and largest range (max - min) of their test accuracies, in
    points. The noise a claim's tolerance must stand above."""
    done = runs[(runs["status"] == "complete")] if len(runs) else runs
    columns = ["epochs", "experiments", "median range", "largest range"]
    if done.empty:
        return pd.DataFrame(columns=columns)
    ranges = done.groupby([*EXPERIMENT, "epochs"], dropna=False)["test_accuracy"].agg(["count", "min", "max"])
    ranges = ranges[ranges["count"] > 1]
    ranges = (ranges["max"] - ranges["min"]).rename("range").reset_index()
    table = ranges.groupby("epochs")["range"].agg(experiments="size", median="median", largest="max").reset_index()
    return table.rename(columns={"median": "median range", "largest": "largest range"})[columns]


def scale_note(runs: pd.DataFrame) -> str:
    """'2 epochs, 1-3 seeds, CIFAR-10, JPEG copy, AMD EPYC (2 threads)': the evidence behind a
    figure or a claim, down to the hardware it was trained on."""
    if runs.empty:
        return "no runs yet"
    epochs = "/".join(str(int(e)) for e in sorted(set(runs["epochs"])))
    sources = ", ".join(sorted({data_lib.describe_data(row) for row in _records(runs)}))
    hardware = sorted({str(h) for h in runs["hardware"].dropna()}) if "hardware" in runs else []
    return f"{epochs} epochs, {seeds_note(runs)}, {sources}" + "".join(f", {h}" for h in hardware)


def _records(runs: pd.DataFrame) -> list[dict]:
    """Each run's row as a dict, for :func:`bnlib.data.describe_data` and ``data_identity``."""
    return runs.to_dict("records")


def run_inventory(runs: pd.DataFrame) -> pd.DataFrame:
    """What a results store holds, per experiment: finished runs, seeds, epochs, hours of
    training (per-epoch test evaluation included, clamping not; replicates trained fused each
    count the shared time), training speed, the hardware and the data they ran on."""
    done = runs[runs["status"].isin(["complete", "diverged"])] if len(runs) else runs
    columns = [*EXPERIMENT, "runs", "seeds", "epochs", "train_hours", "images_per_s", "hardware", "data"]
    if done.empty:
        return pd.DataFrame(columns=columns)
    joined = lambda values: ", ".join(sorted({str(v) for v in values}))  # noqa: E731
    done = done.assign(data_label=[data_lib.describe_data(row) for row in _records(done)])
    table = done.groupby(EXPERIMENT, dropna=False, sort=False).agg(
        runs=("seed", "size"), seeds=("seed", "nunique"), epochs=("epochs", joined),
        train_hours=("train_seconds", lambda s: s.sum() / 3600), images_per_s=("images_per_s", "mean"),
        hardware=("hardware", joined),
        data=("data_label", joined))
    return table.reset_index()[columns]


def doubling_slope(bn_params: pd.Series, accuracy: pd.Series) -> tuple[float, float]:
    """Least-squares fit accuracy = a + b * log2(BatchNorm parameters): b is the gain in
    accuracy points per doubling (Figure 4 finds it linear in the doublings)."""
    x = np.log2(np.asarray(bn_params, dtype=float))
    y = np.asarray(accuracy, dtype=float)
    if len(np.unique(x)) < 2:
        raise ValueError("a slope needs networks with at least two BatchNorm parameter counts")
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def depth_width_series(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Figure 4's two series from a summary with one row per network (``model``): ``deep``,
    the networks of width 1, and ``wide``, those at the depth of the wide networks. Both start
    at ResNet-14, which is WRN-14-1 (a network listed under both names counts once)."""
    rows = summary.assign(network=summary["model"].map(canonical_name)).drop_duplicates("network")
    archs = [lookup(n) for n in rows["network"]]
    wide_depths = {a.depth for a in archs if a.width > 1}
    return {"deep": rows.loc[np.array([a.width == 1 for a in archs], dtype=bool)],
            "wide": rows.loc[np.array([a.depth in wide_depths for a in archs], dtype=bool)]}


def depth_width_slopes(summary: pd.DataFrame) -> dict[str, float]:
    """Figure 4: accuracy points per doubling of BatchNorm parameters for the deep and the wide
    series (:func:`depth_width_series`), from a summary with ``model`` and ``mean`` columns.
    A series with fewer than two networks has no slope."""
    finished = summary[summary["n"] > 0] if "n" in summary else summary  # all-diverged groups have no mean
    return {kind: doubling_slope(part["network"].map(batchnorm_parameters), part["mean"])[0]
            for kind, part in depth_width_series(finished).items() if len(part) >= 2}


def gamma_beta_summary(bn: pd.DataFrame) -> dict[str, float]:
    """Figure 5's statistics of one network's gamma and beta (all layers pooled)."""
    gamma, beta = bn["gamma"].to_numpy(), bn["beta"].to_numpy()
    return {
        "gamma_mean": float(gamma.mean()),
        "gamma_std": float(gamma.std()),
        "gamma_frac_abs_below_0.01": float((np.abs(gamma) < 0.01).mean()),
        "gamma_frac_abs_below_0.1": float((np.abs(gamma) < 0.1).mean()),
        "gamma_frac_negative": float((gamma < 0).mean()),
        "beta_mean": float(beta.mean()),
        "beta_std": float(beta.std()),
    }


def gamma_fractions(bn: pd.DataFrame, thresholds=GAMMA_THRESHOLDS) -> dict[float, float]:
    """Figure 6: the fraction of gamma with |gamma| below each threshold."""
    magnitude = np.abs(bn["gamma"].to_numpy())
    return {t: float((magnitude < t).mean()) for t in thresholds}


def gamma_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: its config columns plus :func:`gamma_beta_summary` and the
    Figure 6 fractions (``frac_below_<t>``)."""
    if runs.empty:
        return pd.DataFrame()
    rows = []
    for _, run in runs[runs["status"] == "complete"].iterrows():
        bn = results.load_batchnorm(run["run_dir"])
        fractions = {f"frac_below_{t:g}": v for t, v in gamma_fractions(bn).items()}
        rows.append({**run.to_dict(), **gamma_beta_summary(bn), **fractions})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- clamping (Figure 7)

# --------------------------------------------------------------------------- the scale bridge

SCALE_COLUMNS = [*EXPERIMENT, "mode", "epochs", "seed", "test_accuracy", "gamma_frac_abs_below_0.01",
                 "gamma_frac_abs_below_0.1", "gamma_frac_negative", "clamp_cost_0.01", "train_seconds",
                 "data_source", "hardware"]


def scale_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Chapter 9's scale bridge, one row per finished run (any store, any number of epochs):
    its accuracy, the γ statistics of Figures 5-7 (fractions with |γ| < 0.01 and < 0.1, negative
    γ), the cost of clamping |γ| < 0.01 (points lost, where its Figure 7 curve is stored) and its
    training seconds. ``runs`` carries the paper's ``mode`` labels (bnlib.book.with_labels)."""
    done = runs[runs["status"] == "complete"] if len(runs) else runs
    rows = []
    for _, run in done.iterrows():
        stats = gamma_beta_summary(results.load_batchnorm(run["run_dir"]))
        curve = clamp_curve(run["run_dir"], None)
        clamped = curve[curve["keep"] == "value"].set_index("threshold")["test_accuracy"] if len(curve) else {}
        cost = float(clamped[0.0] - clamped[0.01]) if 0.0 in clamped and 0.01 in clamped else np.nan
        rows.append({**{c: run.get(c) for c in (*EXPERIMENT, "mode", "epochs", "seed", "test_accuracy",
                                                 "train_seconds", "data_source", "hardware")},
                     **{k: stats[k] for k in ("gamma_frac_abs_below_0.01", "gamma_frac_abs_below_0.1",
                                               "gamma_frac_negative")}, "clamp_cost_0.01": cost})
    return pd.DataFrame(rows, columns=SCALE_COLUMNS)


def jpeg_price(bridge: pd.DataFrame, epochs: int = 16, model: str = "resnet-14") -> pd.DataFrame:
    """The price of JPEG: per mode, accuracy at each JPEG quality (mean over seeds) of ``model``
    trained for ``epochs``, the least-squares line through them in points per 10 quality
    points, and that line at quality 100 less the copy's accuracy (quality 75): what the copy
    costs if the line held up to the nearly lossless end, an extrapolation. NaN until runs at
    two qualities or more exist. ``fewest seeds``: the seeds behind the least measured quality."""
    rows = bridge[(bridge["model"] == model) & (bridge["epochs"] == epochs)]
    rows = rows.assign(quality=[data_lib.data_identity(row)[1] for row in _records(rows)]).dropna(subset=["quality"])
    out = []
    for mode, part in rows.groupby("mode", sort=False):
        means = part.groupby("quality")["test_accuracy"].mean().sort_index(ascending=False)
        slope, intercept = np.polyfit(means.index.astype(float), means.values, 1) if len(means) >= 2 else (np.nan,) * 2
        copy = means.get(data_lib.COPY_QUALITY, np.nan)
        out.append({"mode": mode, **{f"quality {int(q)}": v for q, v in means.items()},
                    "points per 10 quality": 10 * slope,
                    "copy's cost, extrapolated": intercept + 100 * slope - copy, "runs": len(part),
                    "fewest seeds": int(part.groupby("quality").size().min())})
    qualities = sorted({int(q) for q in rows["quality"]}, reverse=True)  # one column order for every mode
    return pd.DataFrame(out, columns=["mode", *(f"quality {q}" for q in qualities), "points per 10 quality",
                                      "copy's cost, extrapolated", "runs", "fewest seeds"])


def load_weights(run_dir: str | Path) -> dict[str, torch.Tensor]:
    """A finished run's final state dict in full, random features included, whether stored in
    full or compact (:mod:`bnlib.compact` rebuilds the frozen tensors from the run's config and
    checks them against their fingerprint)."""
    return _stored_network(run_dir)[1]


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """A finished run's network with its final weights and BatchNorm statistics."""
    model, state = _stored_network(run_dir)
    model.load_state_dict(state)
    return model.to(device).eval()


def _stored_network(run_dir: str | Path) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    from . import compact

    config = RunConfig.from_flat(**run_config_fields(run_dir))
    stored = results.load_torch(Path(run_dir) / results.MODEL)
    classes = stored["num_classes"] if compact.is_compact(stored) else _classes(config.model.model, stored)
    model = compact.rebuild(config, classes)
    return model, compact.expand(stored, model, config.train.trainable)


def _classes(name: str, state: dict) -> int:
    """The number of classes a stored network was built for: the length of its output bias."""
    from .layers import parameter_parts

    parts = parameter_parts(build(name, device="meta"))
    bias = next(n for n, p in parts.items() if p == {"output"} and n.endswith("bias"))
    return int(state[bias].shape[0])


def run_config_fields(run_dir: str | Path) -> dict:
    """The config fields of a stored run (``config.json`` also holds data descriptors)."""
    from .config import all_fields

    stored = results.read_config(run_dir)
    return {f.name: stored[f.name] for f in all_fields()}


@torch.no_grad()
def set_gamma(model: nn.Module, threshold: float, keep: str = "value") -> tuple[nn.Module, float]:
    """A copy of ``model`` whose gammas with |gamma| < ``threshold`` are set to 0 (Figure 7).
    The others keep their value (``keep="value"``), or become sign(gamma) (``"one"``) or
    sign(gamma) * mean|gamma| (``"mean"``): Section 5's binarisations. Returns the copy and
    the fraction of channels set to 0."""
    import copy

    clamped = copy.deepcopy(model)
    layers = [m for m in clamped.modules() if isinstance(m, nn.BatchNorm2d)]
    all_gamma = torch.cat([m.weight.flatten() for m in layers])
    mean_magnitude = all_gamma.abs().mean()
    for m in layers:
        gamma = m.weight
        small = gamma.abs() < threshold
        if keep == "one":
            gamma.copy_(torch.sign(gamma))
        elif keep == "mean":
            gamma.copy_(torch.sign(gamma) * mean_magnitude)
        elif keep != "value":
            raise ValueError(f"keep must be value, one or mean, not {keep!r}")
        gamma[small] = 0.0
    return clamped, float((all_gamma.abs() < threshold).float().mean())


def clamped_accuracy(model: nn.Module, dataset: data_lib.Dataset, threshold: float, keep: str = "value",
                     ) -> tuple[float, float]:
    """Figure 7's re-evaluation, live: test accuracy (percent) of ``model`` with its gammas
    below ``threshold`` set to 0 (others kept, or binarised: :func:`set_gamma`), and the
    fraction set to 0. The chapter 7 slider and ``python -m bnlib clamp`` both call this."""
    from .train import evaluate

    clamped, fraction = set_gamma(model, threshold, keep)
    _, accuracy = evaluate(clamped, dataset)
    return accuracy, fraction


def data_of(run_dir: str | Path, data: str | None = None) -> data_lib.Dataset:
    """The data set a stored run was trained on: ``data`` if given, else this machine's real
    data (:func:`bnlib.data.default_real_data`) or ``synthetic``; refused unless its
    fingerprint is the run's."""
    from .errors import ConfigError

    expected = results.read_json(Path(run_dir) / results.CONFIG).get("data_fingerprint")
    candidates = [data] if data else [data_lib.default_real_data(), "synthetic"]
    for source in candidates:
        try:
            dataset = data_lib.load(source)
        except ConfigError:
            continue
        if dataset.fingerprint == expected:
            return dataset
    raise ConfigError(f"{run_dir} was trained on data {expected}: pass --data with that data set "
                      f"(tried {', '.join(candidates)})")


def clamp_grid() -> list[tuple[str, float]]:
    """Figure 7's evaluations: every clamping threshold keeping the other gammas, and each
    binarisation (the others set to +-1, or to +- their mean magnitude)."""
    return [("value", t) for t in CLAMP_THRESHOLDS] + [(k, t) for k in ("one", "mean") for t in BINARISE_THRESHOLDS]


def _clamp_key(keep: str, threshold: float) -> tuple[str, float]:
    return keep, round(float(threshold), 9)


def _read_curve(run_dir: str | Path) -> tuple[pd.DataFrame, str | None]:
    """A run's stored clamping curve and, when its ``clamping.csv`` cannot be read, why (the
    curve is then empty). Reads only: a reader never writes in a store, which may be read-only."""
    path = Path(run_dir) / results.CLAMPING
    if not path.is_file():
        return pd.DataFrame(columns=CLAMP_COLUMNS), None
    try:
        curve = pd.read_csv(path)
        if list(curve.columns) != CLAMP_COLUMNS or curve["threshold"].dtype.kind not in "fi":
            raise ValueError(f"columns {list(curve.columns)}")
        return curve, None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        return pd.DataFrame(columns=CLAMP_COLUMNS), str(error).splitlines()[0] if str(error) else repr(error)


def _stored_curve(run_dir: str | Path) -> pd.DataFrame:
    curve, problem = _read_curve(run_dir)
    if problem:  # derived data: computed again in memory where the weights are, set aside by a writer
        results.log.warning("%s cannot be read (%s): its evaluations count as missing",
                            Path(run_dir) / results.CLAMPING, problem)
    return curve


def clamp_missing(run_dir: str | Path, grid: Sequence[tuple[str, float]] | None = None,
                  stored: pd.DataFrame | None = None) -> list[tuple[str, float]]:
    """The evaluations of ``grid`` (default :func:`clamp_grid`) a run's clamping.csv (or
    ``stored``, its contents when already read) lacks."""
    stored = _stored_curve(run_dir) if stored is None else stored
    done = {_clamp_key(k, t) for k, t in zip(stored["keep"], stored["threshold"])}
    return [(k, t) for k, t in (clamp_grid() if grid is None else grid) if _clamp_key(k, t) not in done]


def clamp_curve(run_dir: str | Path, dataset: data_lib.Dataset | None,
                grid: Sequence[tuple[str, float]] | None = None,
                device: str | torch.device = "cpu") -> pd.DataFrame:
    """Test accuracy after clamping gamma, one row per (keep, threshold) of ``grid`` (default
    :func:`clamp_grid`). Stored in the run folder as ``clamping.csv``; only evaluations not
    stored yet are computed, which needs the run's weights (``dataset=None``: only read)."""
    from .train import evaluate

    grid = clamp_grid() if grid is None else list(grid)
    stored = _stored_curve(run_dir)
    todo = clamp_missing(run_dir, grid, stored)
    if todo and dataset is not None:
        record = results.read_json(Path(run_dir) / results.CONFIG)
        expected = record.get("data_fingerprint")
        if expected != dataset.fingerprint:
            raise ValueError(f"{run_dir} was trained on data {expected}, not on {dataset.fingerprint}")
        if _read_curve(run_dir)[1]:  # this call writes the curve: the damaged file is kept aside first
            results.set_aside(Path(run_dir) / results.CLAMPING, "cannot be read; its evaluations are computed again")
        channels_last = bool(record.get("channels_last", True))  # as trained: the same rounding
        model = load_model(run_dir, device)
        model = model.to(memory_format=torch.channels_last) if channels_last else model
        ds = dataset.to(device)
        rows = stored.to_dict("records")
        for keep, threshold in todo:
            clamped, fraction = set_gamma(model, threshold, keep)
            loss, accuracy = evaluate(clamped, ds, channels_last=channels_last)
            rows.append({"keep": keep, "threshold": threshold, "fraction_clamped": fraction,
                         "test_accuracy": accuracy, "test_loss": loss})
            # stored after each evaluation: a curve cut short (a CPU evaluation of a wide network
            # takes minutes) resumes where it stopped instead of starting again
            results.write_csv(Path(run_dir) / results.CLAMPING, rows, CLAMP_COLUMNS)
        stored = pd.DataFrame(rows, columns=CLAMP_COLUMNS)
    wanted = {_clamp_key(k, t) for k, t in grid}
    return stored.loc[np.array([_clamp_key(k, t) in wanted for k, t in zip(stored["keep"], stored["threshold"])],
                               dtype=bool)]
