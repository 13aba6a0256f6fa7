"""The claims scoreboard: every quantitative claim of the paper beside what our runs give.

The paper's claims are data (``data/paper/claims.csv``): the quantity, the network, mode and
BatchNorm init it is about, the paper's value and the tolerance within which ours "holds".
:func:`scoreboard` computes ours from a results table and says at what scale it was obtained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis, data as data_lib, results
from .config import RunConfig
from .freezing import mode_identity

PAPER_DATA = Path(__file__).resolve().parents[1] / "data" / "paper"
CLAIMS = PAPER_DATA / "claims.csv"  # every quantitative claim, with the paper's value
PAPER_TABLE1 = PAPER_DATA / "table1.csv"  # Table 1 as printed


def load_claims(path: str | Path = CLAIMS) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"trainable": str, "reference": str}, keep_default_na=False)


# The paper's claims are all about Appendix B's training recipe: runs with another lr,
# schedule, batch size, augmentation or precision do not count towards them.
RECIPE = ("lr", "momentum", "weight_decay", "batch_size", "lr_drops", "augment", "precision")


def on_recipe(runs: pd.DataFrame, reencoded: bool = False) -> pd.Series:
    """Which runs follow Appendix B's recipe (:data:`RECIPE` at its defaults) on CIFAR-10 or its
    copy; the runs on the copy re-encoded again (the price of JPEG, degraded images) only with
    ``reencoded``."""
    defaults = RunConfig().flat()
    recipe = np.logical_and.reduce([runs[f].astype(str) == str(defaults[f]) for f in RECIPE])
    return recipe if reencoded else recipe & ~runs["data_source"].map(data_lib.reencoded)


def candidates(runs: pd.DataFrame, network: str, trainable: str, bn_init: str = "uniform",
               feature_init: str = "he-normal", normalize: bool = True) -> pd.DataFrame:
    """Every finished run of one experiment under Appendix B's recipe, at any number of epochs."""
    runs = runs[runs["model"] == network]  # first: a network with no runs is never built
    if runs.empty:
        return runs
    mode = mode_identity(trainable, network)  # any spelling of the same trained tensors
    return runs[on_recipe(runs) & (runs["bn_init"] == bn_init)
                & (runs["feature_init"] == feature_init) & (runs["normalize"] == normalize)
                & (runs["status"] == "complete") & runs["trainable"].map(lambda t: mode_identity(str(t), network) == mode)]


def select(runs: pd.DataFrame, network: str, trainable: str, bn_init: str = "uniform",
           feature_init: str = "he-normal", normalize: bool = True) -> pd.DataFrame:
    """The finished runs of one experiment at the largest number of epochs we have for it."""
    chosen = candidates(runs, network, trainable, bn_init, feature_init, normalize)
    return chosen[chosen["epochs"] == chosen["epochs"].max()] if len(chosen) else chosen


def _override(claim: pd.Series) -> dict:
    """``reference`` is ``field=value``: the experiment a gap is measured against."""
    key, _, value = claim["reference"].partition("=")
    spec = {"network": claim["network"], "trainable": claim["trainable"], "bn_init": claim["bn_init"],
            "feature_init": "he-normal", "normalize": True}
    spec[{"model": "network"}.get(key, key)] = value.lower() == "true" if key == "normalize" else value
    return spec


def _clamp_value(chosen: pd.DataFrame, keep: str, threshold: float, drop: bool) -> float | None:
    values = []
    for run_dir in chosen["run_dir"]:
        curve = analysis.clamp_curve(run_dir, None)
        curve = curve[curve["keep"] == keep]
        at = curve.loc[np.isclose(curve["threshold"], threshold), "test_accuracy"]
        base = curve.loc[np.isclose(curve["threshold"], 0.0), "test_accuracy"]  # unclamped (keep="value")
        if len(at) and (len(base) or not drop):
            values.append(float(base.iloc[0] - at.iloc[0]) if drop else float(at.iloc[0]))
    return float(np.mean(values)) if values else None


def _value(quantity: str, chosen: pd.DataFrame, threshold: float | None) -> float | None:
    """One quantity, averaged over the runs of one experiment."""
    if quantity == "accuracy":
        return float(chosen["test_accuracy"].mean())
    if quantity in ("clamp_drop", "binarized_accuracy", "binarized_mean_accuracy"):
        keep, drop = {"clamp_drop": ("value", True), "binarized_accuracy": ("one", False),
                      "binarized_mean_accuracy": ("mean", False)}[quantity]
        return _clamp_value(chosen, keep, threshold, drop)
    tables = [results.load_batchnorm(d) for d in chosen["run_dir"]]
    if quantity == "gamma_frac_abs_below":
        values = [analysis.gamma_fractions(bn, (threshold,))[threshold] for bn in tables]
    else:
        values = [analysis.gamma_beta_summary(bn)[quantity] for bn in tables]
    return float(np.mean(values))


def _ours(claim: pd.Series, runs: pd.DataFrame) -> tuple[float | None, pd.DataFrame]:
    """Our value of one claim and the runs it came from."""
    quantity = claim["quantity"]
    if quantity in ("slope_ratio", "depth_slope", "width_slope"):
        models = sorted(set(runs["model"])) if not runs.empty else []
        used = pd.concat([select(runs, m, claim["trainable"]) for m in models]) if models else runs
        slopes = analysis.depth_width_slopes(analysis.replicate_summary(used, ["model"])) if len(used) else {}
        if quantity == "slope_ratio":
            return (slopes["deep"] / slopes["wide"] if len(slopes) == 2 and slopes["wide"] else None), used
        series = "deep" if quantity == "depth_slope" else "wide"
        networks = set(analysis.depth_width_series(used[["model"]])[series]["model"]) if len(used) else set()
        return slopes.get(series), used[used["model"].isin(networks)] if len(used) else used

    network, trainable, bn_init = claim["network"], claim["trainable"], claim["bn_init"]
    threshold = float(claim["threshold"]) if claim["threshold"] != "" else None
    if quantity.endswith("_gap"):
        # both sides at the same (largest shared) number of epochs
        ref = _override(claim)
        mine = candidates(runs, network, trainable, bn_init)
        other = candidates(runs, ref["network"], ref["trainable"], ref["bn_init"], ref["feature_init"],
                           ref["normalize"])
        shared = set(mine["epochs"]) & set(other["epochs"]) if len(mine) and len(other) else set()
        if not shared:
            return None, mine.iloc[:0]
        mine, other = mine[mine["epochs"] == max(shared)], other[other["epochs"] == max(shared)]
        base = quantity.removesuffix("_gap")
        gap = _value(base, mine, threshold), _value(base, other, threshold)
        return (None if None in gap else gap[0] - gap[1]), pd.concat([mine, other])
    chosen = select(runs, network, trainable, bn_init)
    if chosen.empty:
        return None, chosen
    return _value(quantity, chosen, threshold), chosen


def reading(value, quantity: str) -> str:
    """A claim's value as a reader reads it: accuracies and gaps in points with one decimal,
    fractions as percentages, ratios with two decimals; never scientific notation."""
    if value is None or value == "" or (isinstance(value, float) and np.isnan(value)):
        return ""
    value = float(value)
    if quantity.startswith("gamma_frac") or quantity.endswith("_frac"):
        return f"{100 * value:.1f}%"
    if "ratio" in quantity or "slope" in quantity:
        return f"{value:.2f}"
    return f"{value:.1f}"


def _per_seed(claim: pd.Series, runs: pd.DataFrame, used: pd.DataFrame) -> str:
    """Ours from each seed's runs alone, and in how many seeds it holds, where a claim's runs
    span several seeds: whether the mean's verdict would survive seed-to-seed noise. A seed
    counts only if it has every network the mean used (a slope over fewer networks, or a gap
    with one side missing, is another quantity); gaps so pair runs of the same seed."""
    seeds = sorted(set(used["seed"])) if len(used) else []
    if len(seeds) < 2:
        return ""
    values = []
    for seed in seeds:
        ours, mine = _ours(claim, runs[runs["seed"] == seed])
        if ours is not None and set(mine["model"]) == set(used["model"]):
            values.append(ours)
    if len(values) < 2:
        return ""
    held = sum(_holds(claim, value) == "yes" for value in values)
    return f"{', '.join(reading(value, claim['quantity']) for value in values)} (holds in {held} of {len(values)})"


def seed_values(claim: pd.Series, runs: pd.DataFrame) -> list[float]:
    """Ours from each seed's runs alone (:func:`_per_seed`'s rule: a seed counts only with every
    network the mean used): empty where the claim's runs have one seed."""
    ours, used = _ours(claim, runs)
    values = []
    for seed in sorted(set(used["seed"])) if ours is not None and len(used) else []:
        value, mine = _ours(claim, runs[runs["seed"] == seed])
        if value is not None and set(mine["model"]) == set(used["model"]):
            values.append(value)
    return values if len(values) > 1 else []


def tolerance_review(stores: dict[str, pd.DataFrame], claims: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each value claim's tolerance against the noise our own seeds show for it: how far the
    seeds of its experiment fall apart in each store (``stores``: name -> runs) that repeats
    them, at that store's length, in the claim's units. A tolerance narrower than that range
    can call a claim "no" on one unlucky seed; a trend claim has no tolerance (its sign)."""
    claims = load_claims() if claims is None else claims
    rows = []
    for _, claim in claims[claims["holds_if"] == "within"].iterrows():
        for name, runs in stores.items():
            values = seed_values(claim, runs)
            if not values:
                continue
            _, used = _ours(claim, runs)
            spread = max(values) - min(values)
            scale = 100 if claim["quantity"].startswith("gamma_frac") or claim["quantity"].endswith("_frac") else 1
            rows.append({"id": claim["id"], "rule": rule(claim), "store": name, "epochs": int(used["epochs"].max()),
                         "seeds": len(values), "seed range": scale * spread,
                         "tolerance wider than the range": "yes" if float(claim["tolerance"]) > spread else "no"})
    return pd.DataFrame(rows, columns=["id", "rule", "store", "epochs", "seeds", "seed range",
                                       "tolerance wider than the range"])


def _scale(used: pd.DataFrame) -> str:
    return f"{', '.join(dict.fromkeys(used['model']))}; {analysis.scale_note(used)}" if len(used) else ""


def _holds(claim: pd.Series, ours: float | None) -> str:
    if ours is None:
        return "not run"
    if claim["holds_if"] in ("negative", "positive"):
        return "yes" if (ours < 0 if claim["holds_if"] == "negative" else ours > 0) else "no"
    paper, tolerance = float(claim["paper_value"]), float(claim["tolerance"])
    return "yes" if abs(ours - paper) <= tolerance else "no"


def rule(claim: pd.Series) -> str:
    """What "holds" means for a claim, in words: the sign a trend must have, or how far from the
    paper's value ours may fall (in points for accuracies and fractions)."""
    if claim["holds_if"] in ("negative", "positive"):
        return f"ours {'<' if claim['holds_if'] == 'negative' else '>'} 0"
    tolerance, quantity = float(claim["tolerance"]), claim["quantity"]
    if "ratio" in quantity or "slope" in quantity:
        return f"within ±{tolerance:.2f} of the paper"
    points = 100 * tolerance if quantity.startswith("gamma_frac") or quantity.endswith("_frac") else tolerance
    return f"within ±{points:g} point{'' if points == 1 else 's'} of the paper"


def scoreboard(runs: pd.DataFrame, claims: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim: the paper's value, ours (the mean over seeds), whether it holds (within
    the claim's tolerance of the paper's value, or with the paper's sign for a trend), ours seed
    by seed where there are several, and the scale of ours (``epochs``: the longest of its runs)."""
    claims = load_claims() if claims is None else claims
    rows = []
    for _, claim in claims.iterrows():
        ours, used = _ours(claim, runs)
        rows.append({
            "id": claim["id"], "figure": claim["figure"], "claim": claim["claim"], "quantity": claim["quantity"],
            "kind": "trend" if claim["holds_if"] in ("negative", "positive") else "value",
            "paper": claim["paper_value"], "ours": None if ours is None else round(ours, 3),
            "holds if": rule(claim), "holds": _holds(claim, ours), "per seed": _per_seed(claim, runs, used),
            "scale": _scale(used), "epochs": int(used["epochs"].max()) if len(used) else None,
        })
    return pd.DataFrame(rows)


_BOARDS: dict[tuple, pd.DataFrame] = {}


def of_store(store: str | Path) -> pd.DataFrame:
    """:func:`scoreboard` of every claim from the runs of one store, computed again only when
    the store changed (a run, a curve or γ and β added: :func:`bnlib.results.state`), since a
    chapter asks for it in every section. The table is the caller's own copy."""
    runs = results.load(store)  # warns of damaged runs at every call, as load does
    key = results.state(store, (results.CONFIG, results.RESULT, results.METRICS, results.BATCHNORM,
                                results.CLAMPING))
    if key not in _BOARDS:
        if len(_BOARDS) >= 16:
            _BOARDS.pop(next(iter(_BOARDS)))
        _BOARDS[key] = scoreboard(runs)
    return _BOARDS[key].copy()


def paper_values(quantity: str = "accuracy") -> pd.DataFrame:
    """What the paper states of one ``quantity`` (a column of claims.csv: ``accuracy``,
    ``gamma_frac_abs_below``, ...) for one network in one mode under the default
    initialisations: ``model``, ``mode`` (the paper's label), ``threshold`` (NaN where the
    quantity has none), ``paper`` (as claims.csv writes it: percent for accuracies, fractions
    for fractions) and ``figure``. Figures draw them as reference markers beside ours."""
    from .freezing import paper_label

    table = load_claims()
    table = table[(table["quantity"] == quantity) & (table["bn_init"] == "uniform")]
    return pd.DataFrame({"model": table["network"],
                         "mode": [paper_label(t, n) for t, n in zip(table["trainable"], table["network"])],
                         "threshold": pd.to_numeric(table["threshold"], errors="coerce"),
                         "paper": table["paper_value"].astype(float), "figure": table["figure"]}).reset_index(drop=True)

