"""What the book's chapters share: set-up from a parameters cell, labelled run tables, and the
live clamping explorer. Chapters call these; they hold no logic of their own."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from IPython.display import Markdown

from . import analysis, data as data_lib, results
from .freezing import paper_label
from .style import init_name, mode_name
from .errors import ConfigError
from .experiments import ROOT, SCALE_RUNS_DIR
from .plan import PROFILES, Plan, shown


def setup(page_parameters: tuple[str, ...] = (), **parameters) -> Plan:
    """Call first in every chapter with its parameters cell's values (validated as the CLI
    validates its flags); prints the chapter's set-up line (:meth:`Plan.summary`).
    ``page_parameters``: names of the page's parameters cell that are not the plan's (a network
    page's ``network``).

    Refuses, with one :class:`ConfigError` line (papermill then exits non-zero), a parameter
    name papermill was given that the parameters cell does not have (a typo would otherwise
    leave the profile's value silently in place), and a ``data`` that does not exist.

    Makes plotly figures render inside a kernel (papermill, the book build) as well as in
    Jupyter: the default renderer there emits a MIME type the book drops.
    """
    import plotly.io as pio

    unknown = injected_names() - set(parameters) - set(page_parameters) - {"profile"}
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(sorted(unknown))}: this page's parameters are "
                          f"{', '.join(sorted({*parameters, *page_parameters}))}")

    pio.renderers.default = "plotly_mimetype+notebook"
    pd.set_option("display.precision", 2)
    pd.set_option("display.float_format", plain)  # no table shows 5.00e-03
    # Tables are read, not skimmed: the scale column ends with the data (JPEG copy) and the
    # hardware, which pandas' default 50-character cut would hide.
    pd.set_option("display.max_colwidth", None)
    _notes_in_the_page()
    plan = Plan.from_parameters(**parameters)
    if plan.data:
        data_lib.check_source(plan.data_source)  # a path that does not exist is an error, not "no runs"
    print(plan.summary())
    return plan


PAPERMILL_HEADER = "# Parameters"  # the first line of the cell papermill injects


def injected_names(history: list[str] | None = None) -> set[str]:
    """The names papermill assigned in this kernel: the targets of its injected parameters
    cell(s), found in IPython's input history (``history``: ``In``); empty outside papermill."""
    import ast

    if history is None:
        from IPython import get_ipython

        shell = get_ipython()
        history = list(shell.user_ns.get("In", [])) if shell is not None else []
    names: set[str] = set()
    for source in history:
        if not source.lstrip().startswith(PAPERMILL_HEADER):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        names |= {target.id for node in tree.body if isinstance(node, ast.Assign)
                  for target in node.targets if isinstance(target, ast.Name)}
    return names


class _Note(logging.Handler):
    """The store's warnings (a run skipped because a file of it cannot be read) as visible
    notes in the page, on stdout: a reader sees them, and a page has no stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"Note: {record.getMessage()}")


def _notes_in_the_page() -> None:
    logger = logging.getLogger("bnlib")
    if not any(isinstance(h, _Note) for h in logger.handlers):
        logger.addHandler(_Note(logging.WARNING))  # and no more the one-line stderr fallback


def with_labels(runs: pd.DataFrame) -> pd.DataFrame:
    """Add the paper's name of each run's training mode (``mode``: All, BN, BN+S+O, ...)."""
    if runs.empty:
        return runs.assign(mode=pd.Series(dtype=str))
    return runs.assign(mode=[paper_label(str(t), m) for t, m in zip(runs["trainable"], runs["model"])])


def stored(plan: Plan, configs) -> pd.DataFrame:
    """The stored runs of ``configs``, labelled, saying nothing of missing ones (for the
    sections on other scales, whose full grids are far larger than what was run)."""
    return with_labels(plan.match(configs)[0])


def pooled_batchnorm(runs: pd.DataFrame, network: str) -> dict[str, pd.DataFrame]:
    """Figure 5's input: every finished run's γ and β of one network, pooled per mode."""
    done = runs[(runs["model"] == network) & (runs["status"] == "complete")] if len(runs) else runs
    return {mode: pd.concat([results.load_batchnorm(d) for d in part["run_dir"]]) for mode, part in done.groupby("mode")}


def other_scales(plan: Plan) -> list[Plan]:
    """The other profiles whose results this book ships (the ``paper`` profile's GPU runs
    beside a ``cpu`` chapter, say), each with its own store: chapters show them in a section
    of their own, since a trend drawn across two scales would mean nothing."""
    others = [Plan.from_parameters(name) for name in PROFILES if name not in ("smoke", plan.profile.name)]
    return [other for other in others if results.run_dirs(other.store)]


def by_scale(plan: Plan, grid: str) -> list[tuple[Plan, pd.DataFrame]]:
    """A figure's runs in every store the book ships, the largest scale first: ``grid`` names
    the plan's method that lists them (``"figure2"``, ``"gamma_grid"``, ...). Each item is a
    store's plan and its runs, labelled; stores without any are left out. The chapter's own
    store trains or lists its missing runs (:meth:`Plan.ensure`); the others show what they
    hold. A chapter leads with the first item and folds the rest away below it: a trend read
    at 2 epochs says little of the paper's 160."""
    found = [(plan, with_labels(plan.ensure(getattr(plan, grid)())))]
    found += [(other, stored(other, getattr(other, grid)())) for other in other_scales(plan)]
    found = [(source, runs) for source, runs in found if len(runs)]
    return sorted(found, key=lambda item: -int(item[1]["epochs"].max()))  # stable: ties keep the chapter's first


def network_scales(plan: Plan, network: str) -> list[tuple[Plan, pd.DataFrame]]:
    """:func:`by_scale` for a network page: every run of ``network`` that the profiles' grids
    hold (Figures 1 and 2 and, where the profile runs them on it, Appendices C-E), in every
    store, the largest scale first. The grids are the whole profile's, so a page calls missing
    only what its profile really lacks."""
    def of(source: Plan) -> list:
        return [c for c in source.all_runs() if c.model.model == network]

    found = [(plan, with_labels(plan.ensure(of(plan))))]
    found += [(other, stored(other, of(other))) for other in other_scales(plan)]
    found = [(source, runs) for source, runs in found if len(runs)]
    return sorted(found, key=lambda item: -int(item[1]["epochs"].max()))


def remake_command(plan: Plan, network: str) -> str:
    """The papermill command that makes a network page again (run from the project's top folder,
    in its environment)."""
    return f"papermill book/network.ipynb {network}.ipynb -k python3 -p profile {plan.profile.name} -p network {network}"


def remake_note(plan: Plan, network: str) -> str:
    """The end of a network page: :func:`remake_command` and everything it writes."""
    store = shown(plan.store)
    runs = (f"trains the runs of {network} that the {plan.profile.name} profile lacks into {store}"
            if plan.train_missing else f"reads the runs of {store} (it trains nothing)")
    return (f"Make this page again, at another scale (-p profile smoke|cpu|paper) or with another store "
            f"(-p runs_dir DIR), from a terminal in the project's top folder, in its environment "
            f"(`{OPEN_IN_JUPYTER}` opens JupyterLab there, whose terminals have it):\n  {remake_command(plan, network)}\n"
            f"It writes {network}.ipynb in that folder, {runs}, and adds Figure 7's clamping curves "
            f"(clamping.csv) to the folders of runs whose weights and data are on this machine.")


def default_inits(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs (or metrics) under the paper's default initialisations and normalisation (γ ~
    U[0, 1], β = 0, He normal features): those of Figures 1-3 and 5-7, which must not pool
    Appendix C-E's runs."""
    if runs.empty:
        return runs
    return runs[(runs["bn_init"] == "uniform") & (runs["feature_init"] == "he-normal")
                & runs["normalize"].astype(bool)]


def scale_heading(source: Plan, runs: pd.DataFrame) -> str:
    """What a section's runs are, in a line above it: "160 epochs, the paper's schedule (paper
    profile, data/runs/paper): 1 seed(s), CIFAR-10, JPEG copy, NVIDIA H200"."""
    epochs = int(runs["epochs"].max())
    kind = "the paper's schedule" if epochs >= PAPER_EPOCHS else f"shorter than the paper's {PAPER_EPOCHS}"
    note = analysis.scale_note(runs).split(", ", 1)[-1]  # the epochs are said first
    return f"At {epochs} epochs, {kind} ({source.profile.name} profile, {shown(source.store)}): {note}"


def show_scales(scales: list[tuple[Plan, pd.DataFrame]], section, none: str = "") -> None:
    """Draw each item of :func:`by_scale` with ``section(source, runs)`` under its heading
    (:func:`scale_heading`); ``none`` is printed when there is no item (a figure no store has
    run yet)."""
    from IPython.display import Markdown, display

    if not scales and none:
        print(none)
    for source, runs in scales:
        display(Markdown(f"**{scale_heading(source, runs)}**"))
        section(source, runs)


def conclusion_lines(source: Plan, figures: tuple[str, ...], ids: str = "") -> list[str]:
    """A section's conclusion, computed from its store: a sentence per claim of ``figures`` (or
    whose id matches ``ids``) that the store answers, ours against the paper's value and
    whether it holds by the claim's rule; below the paper's epochs, said to be a hint."""
    from . import claims

    board = claims.of_store(source.store)
    chosen = board["figure"].isin(figures) | (board["id"].str.contains(ids) if ids else False)
    lines = []
    for _, row in board[chosen & (board["holds"] != "not run")].iterrows():
        rule = row["holds if"]
        paper = claims.reading(row["paper"], row["quantity"]) or ("< 0" if rule.startswith("ours <") else "> 0")
        verdict = "holds" if row["holds"] == "yes" else "does not hold"
        hint = "" if row["epochs"] >= PAPER_EPOCHS else f"; at {int(row['epochs'])} epochs, a hint, not an answer"
        lines.append(f"{row['claim']}: ours {claims.reading(row['ours'], row['quantity'])}, the paper {paper}; "
                     f"it {verdict} by its rule, {rule}{hint}.")
    return lines


def paper_vs_ours(plan: Plan, figures: tuple[str, ...], ids: str = "") -> pd.DataFrame:
    """The scoreboard's rows for a chapter: claims about ``figures`` or whose id matches the
    regular expression ``ids``, the paper's value beside ours and the scale of ours: first from
    this chapter's store, then (where they answer the claim) from the other scales' stores."""
    from . import claims

    boards = []
    for i, source in enumerate([plan, *other_scales(plan)]):
        board = claims.of_store(source.store)
        board = board.assign(results=source.profile.name, order=range(len(board)), length=source.n_epochs)
        chosen = board["figure"].isin(figures) | (board["id"].str.contains(ids) if ids else False)
        answered = (board["holds"] != "not run") if i else True  # another scale: only what it ran
        boards.append(board[chosen & answered])
    # the largest scale first, each scale's claims in the claims' order
    table = pd.concat(boards).sort_values(["length", "order"], ascending=[False, True], kind="stable")
    return table.drop(columns=["order", "length"]).set_index(["id", "results"])


def chapter_claims(plan: Plan, figures: tuple[str, ...], ids: str = ""):
    """:func:`paper_vs_ours` as a chapter shows it (:func:`claims_table`): the answered claims,
    each with the store that answers it, and one line per chapter for those not run yet."""
    return claims_table(paper_vs_ours(plan, figures, ids).reset_index(),
                        plan, columns=("id", "results", "claim", "paper", "ours", "holds", "per seed", "scale"))


def scales_side_by_side(plan: Plan, ladder: str | Path | None = SCALE_RUNS_DIR) -> pd.DataFrame:
    """Every claim answered at more than one scale: the paper's value and, per profile and for
    the epoch ladder's store (``ladder``, at its longest runs), ours and whether it holds."""
    from . import claims

    sources = [plan, *other_scales(plan)]
    boards = {p.profile.name: claims.of_store(p.store).set_index("id") for p in sources}
    if ladder is not None and results.run_dirs(ladder):
        boards["ladder"] = claims.of_store(ladder).set_index("id")
    first = boards[plan.profile.name]
    table = first[["claim", "quantity", "paper"]].copy()
    for name, board in boards.items():
        table[f"ours ({name})"] = board["ours"]
        table[f"holds ({name})"] = board["holds"]
    answered = [(table[f"holds ({name})"] != "not run") for name in boards]
    return table[pd.concat(answered, axis=1).sum(axis=1) > 1] if len(boards) > 1 else table.iloc[:0]


def trend(summary: pd.DataFrame, mode: str, networks: list[str]) -> str:
    """One line on how a mode's mean accuracy moves along a series of networks, from a
    replicate summary (``model``, ``mode``, ``mean``): the chapters' text about trends is
    computed, so it always describes the results shown."""
    rows = summary[(summary["mode"] == mode) & (summary["n"] > 0)].set_index("model")["mean"]
    points = [(n, rows[n]) for n in networks if n in rows.index]
    if len(points) < 2:
        return f"{mode}: fewer than two of {', '.join(networks)} finished"
    steps = [b - a for (_, a), (_, b) in zip(points, points[1:])]
    verdict = ("rises at every step" if all(d > 0 for d in steps) else
               "falls at every step" if all(d < 0 for d in steps) else "does not move in one direction")
    path = " → ".join(f"{n} {v:.1f}%" for n, v in points)
    return f"{mode}: {path} ({verdict}; {points[-1][1] - points[0][1]:+.1f} points overall)"


def clamping_curves(plan: Plan, runs: pd.DataFrame) -> pd.DataFrame:
    """Figure 7's curves for every finished run: read from each run folder; what is missing is
    computed (and stored there) where the run's weights and its data are here."""
    finished = runs[runs["status"] == "complete"] if len(runs) else runs
    dataset = None
    frames = []
    for _, run in finished.iterrows():
        computable = _evaluable_here(plan, run)
        if computable and analysis.clamp_missing(run["run_dir"]):
            dataset = dataset or data_lib.load(plan.data_source)
        try:
            curve = analysis.clamp_curve(run["run_dir"], dataset if computable else None)
        except Exception as error:  # a damaged weights file costs its run's curve, not the page
            logging.getLogger("bnlib").warning("%s: its clamping curve cannot be computed (%s: %s); the others are shown",
                                               shown(run["run_dir"]), type(error).__name__, str(error)[:200])
            continue
        if curve.empty:
            continue
        frames.append(curve.assign(model=run["model"], mode=paper_label(str(run["trainable"]), run["model"]),
                                   seed=run["seed"], run_dir=run["run_dir"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["keep", "threshold", "fraction_clamped", "test_accuracy", "model", "mode", "seed", "run_dir"])


def shipped_runs(runs_root: Path | None = None) -> pd.DataFrame:
    """Every run of every store the book ships (``data/runs/*``), labelled with the paper's modes."""
    root = runs_root or ROOT / "data" / "runs"
    stores = [table for table in (results.load(store) for store in sorted(root.glob("*")) if store.is_dir()) if len(table)]
    return with_labels(pd.concat(stores, ignore_index=True)) if stores else pd.DataFrame()


def store_summary(runs_root: Path | None = None) -> pd.DataFrame:
    """What each store the book ships holds (a row per store under ``data/runs``; a page shows
    it transposed, a column per store): its runs and how many finished, networks, modes,
    epochs, seeds per experiment, data, hardware and hours of training, all read from the runs
    themselves."""
    runs = shipped_runs(runs_root)
    columns = ["store", "runs", "finished", "networks", "modes", "epochs", "seeds", "data", "hardware", "hours"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    joined = lambda values: ", ".join(dict.fromkeys(str(v) for v in values))  # noqa: E731
    rows = []
    for store, part in runs.groupby(runs["run_dir"].map(_store_of), sort=False):
        seeds = part.groupby(analysis.EXPERIMENT, dropna=False)["seed"].nunique()
        rows.append({"store": store, "runs": len(part), "finished": int((part["status"] == "complete").sum()),
                     "networks": joined(part["model"]), "modes": joined(mode_name(m) for m in part["mode"]),
                     "epochs": joined(sorted(part["epochs"].astype(int))),
                     "seeds": f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}",
                     "data": joined(data_lib.describe_data(row) for row in part.to_dict("records")),
                     "hardware": joined(part["hardware"].dropna()) if "hardware" in part else "",
                     "hours": part["train_seconds"].sum() / 3600})
    return pd.DataFrame(rows, columns=columns)


def _store_of(run_dir: str) -> str:
    return f"data/runs/{Path(run_dir).parent.name}"


def profile_estimates(path: Path | None = None):
    """The device-hours ``python -m bnlib estimate --out`` projected for whole profiles
    (``data/benchmarks/estimates.jsonl``): profile, pack, hardware, torch, date, hours of the
    whole profile; a line saying how to measure them where none is stored."""
    from .estimate import ESTIMATES

    path = path or ESTIMATES
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    if not rows:
        return Markdown("No projection of a whole profile is stored yet: `python -m bnlib estimate --profile paper "
                        "--out` measures one on your machine (idle: a busy machine projects several times too long).")
    columns = ["profile", "pack", "hardware", "torch_version", "date", "hours"]
    return table(pd.DataFrame(rows).reindex(columns=columns).rename(
        columns={"torch_version": "torch", "hours": "device-hours, whole profile"}))


def unfinished(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of a table (labelled, as :func:`with_labels` makes them) that did not finish,
    and how far each got: store, model, mode, seed, epochs, reached, status."""
    left = runs[runs["status"] != "complete"] if len(runs) else runs
    if left.empty:
        return pd.DataFrame(columns=["store", "model", "mode", "seed", "epochs", "reached", "status"])
    return pd.DataFrame({"store": left["run_dir"].map(_store_of), "model": left["model"], "mode": left["mode"],
                         "seed": left["seed"], "epochs": left["epochs"].astype(int),
                         "reached": [len(results.load_metrics_of(d)) for d in left["run_dir"]],
                         "status": left["status"]})


def unfinished_lines(runs: pd.DataFrame) -> list[str]:
    """A line per run that did not finish, for a chapter that leaves it out of its means."""
    return [f"{r.model} {r.mode} seed {r.seed}: stopped after epoch {r.reached} of {r.epochs}, so it is left out of "
            "the means; its learning curve is in Figure 3" for r in unfinished(runs).itertuples()]


def _bn_only_runs(plan: Plan, runs: pd.DataFrame):
    """Finished BatchNorm-only runs a reader can clamp, in the order chapter 7 offers them: the
    case-study network's from this chapter's runs, then the runs the book ships (data/runs/*),
    longest-trained first."""
    if len(runs):
        yield from (run for _, run in runs[(runs["model"] == plan.case_study()) & (runs["mode"] == "BN")
                                           & (runs["status"] == "complete")].iterrows())
    shipped = shipped_runs()
    if len(shipped):
        shipped = shipped[(shipped["mode"] == "BN") & (shipped["status"] == "complete")]
        yield from (run for _, run in shipped.sort_values("epochs_completed", ascending=False, kind="stable").iterrows())


def live_run(plan: Plan, runs: pd.DataFrame) -> str | None:
    """The first of :func:`_bn_only_runs` that can be re-evaluated here, its weights and its data
    on this machine (the book ships the weights of its small runs: ResNet-14 and ResNet-32)."""
    return next((str(run["run_dir"]) for run in _bn_only_runs(plan, runs) if _evaluable_here(plan, run)), None)


def static_run(plan: Plan, runs: pd.DataFrame) -> str | None:
    """The first of :func:`_bn_only_runs` whose clamping curve is stored: chapter 7's static
    slider where no run is live (a page built without weights or data still has the curves
    committed beside the runs)."""
    return next((str(run["run_dir"]) for run in _bn_only_runs(plan, runs)
                 if not analysis.clamp_curve(run["run_dir"], None).empty), None)


def _evaluable_here(plan: Plan, run: pd.Series) -> bool:
    """Whether a stored run can be re-evaluated on this machine: its weights (committed for small
    runs only) and the data it was trained on are both here."""
    return (Path(run["run_dir"]) / results.MODEL).is_file() and plan.fingerprint() == run["data_fingerprint"]


# How a reader opens a chapter where its widgets run (the README's command, from a clone).
OPEN_IN_JUPYTER = "bash scripts/lab.sh"


def live_section(plan: Plan) -> None:
    """Chapter 7's live section: where the live clamping widget (:func:`clamping_explorer`) works
    and how to open it, the widget itself where a run's weights and data are here, then the
    static slider of the same run (precomputed thresholds, which a static page moves too)."""
    from IPython.display import display

    from . import figures

    runs = with_labels(plan.ensure(plan.gamma_grid()))
    live = live_run(plan, runs)
    print(f"The live slider works in Jupyter, where a kernel runs the network; a static page cannot run it. "
          f"Open this chapter in JupyterLab with `{OPEN_IN_JUPYTER}` from a clone (see the README), run all "
          "cells, and move it.")
    if live is None:
        print(f"Here no BatchNorm-only run has both its weights and its data on this machine, so there is no live "
              f"slider: the book ships the weights of its small runs, and re-evaluating them needs the data they "
              f"were trained on ({results.data_name(plan.data_source)} here). Or train one into a store of your "
              f"own, then re-run this chapter with runs_dir='runs':\n  python -m bnlib train --model "
              f"{plan.case_study()} --trainable bn --epochs {plan.n_epochs} --data {plan.shown_data} --runs-dir runs")
    else:
        print(f"Live: {shown(live)} (move the threshold; the accuracy is computed on the test set now). "
              "A static page leaves the widget's place blank.")
        display(clamping_explorer(plan, live))
    static = live or static_run(plan, runs)  # the live run's own static slider, where there is one
    if static is None:
        return
    run = with_labels(results.load(Path(static).parent))
    run = run[run["run_dir"] == static]
    curve = clamping_curves(plan, run)
    if len(curve):
        print(f"{'The same run' if live else shown(static)} in the static page: each threshold's accuracy "
              "precomputed (clamping.csv); this slider moves without a kernel")
        figures.clamping_slider(curve, run, list(run["model"])).show()


def clamping_explorer(plan: Plan, run_dir: str):
    """An ipywidgets slider that clamps the run's gammas below the chosen threshold and
    re-evaluates the network on the test set, live (in Jupyter; a static page keeps only the
    state it was saved with)."""
    import ipywidgets as widgets

    model = analysis.load_model(run_dir)
    dataset = analysis.data_of(run_dir, plan.data_source)
    out = widgets.Output()
    slider = widgets.FloatLogSlider(value=0.01, base=10, min=-4, max=0, step=0.1, description="|γ| <",
                                    readout_format=".4f", continuous_update=False)
    keep = widgets.Dropdown(options=[("keep others", "value"), ("others to ±1", "one"),
                                     ("others to ±mean|γ|", "mean")], value="value", description="then")

    def update(_=None) -> None:
        accuracy, fraction = analysis.clamped_accuracy(model, dataset, slider.value, keep.value)
        out.clear_output()
        with out:
            print(f"{100 * fraction:.1f}% of γ set to 0 -> test accuracy {accuracy:.2f}%")

    slider.observe(update, names="value")
    keep.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([slider, keep]), out])


# --------------------------------------------------------------------------- the verdict

# The paper's headline claims, in the order a reader asks about them (ids of data/paper/claims.csv).
HEADLINE = ("bn-14", "bn-110", "bn-866", "bn-wrn32", "bnso-110", "bnso-gain-14", "depth-beats-width",
            "slope-ratio", "depth-helps-bn", "gamma-spike-14", "gamma-001-bn-14", "clamp-001-bn-14",
            "clamp-01-bn-110", "binarize-bn-14", "binarize-mean-all-14", "bn-init-ones", "beta-one-gain-14", "feature-init-none",
            "norm-helps-14")
# Where each figure of the paper is reproduced.
CHAPTERS = {"Table 1": "02-architectures", "Figure 1": "03-gamma-beta-all", "Figure 2": "04-training-only-batchnorm",
            "Figure 3": "04-training-only-batchnorm", "Figure 4": "04-training-only-batchnorm",
            "Figure A2": "05-initialisation", "Figure A3": "05-initialisation", "Figure 5": "06-gamma-beta-values",
            "Figure 6": "06-gamma-beta-values", "Figure 7": "07-clamping", "Section 5": "07-clamping",
            "Figure A1": "08-ablation"}
# The stores the book ships, largest scale first: a claim is answered by the first that runs it.
SCALES = ("paper", "scale", "cpu")  # 160-epoch GPU runs, the CPU epoch ladder, the 2-epoch CPU grid


PAPER_EPOCHS = 160  # Appendix B's schedule: below it a verdict is a hint, not an answer


def verdict(ids: tuple[str, ...] = HEADLINE, runs_root: Path | None = None) -> pd.DataFrame:
    """Does it reproduce? One row per headline claim: the paper's value, the rule it is judged
    by, ours at the largest scale the book has for it (160-epoch runs first, then the epoch
    ladder, then the 2-epoch CPU grid), whether it holds (in words, with the scale, where ours is
    below the paper's 160 epochs), that scale and the chapter. Computed from the stores and
    data/paper/claims.csv only."""
    from . import claims

    root = runs_root or ROOT / "data" / "runs"
    wanted = claims.load_claims().set_index("id").loc[list(ids)].reset_index()
    boards = [claims.scoreboard(results.load(root / name), wanted).set_index("id")
              for name in SCALES if results.run_dirs(root / name)]
    rows = []
    for _, claim in wanted.iterrows():
        row = next((board.loc[claim["id"]] for board in boards if board.loc[claim["id"], "holds"] != "not run"), None)
        scale = "" if row is None else row["scale"].split("; ", 1)[-1]  # epochs, seeds, data, hardware
        if row is None:
            holds = "not yet run"
        elif row["epochs"] >= PAPER_EPOCHS:
            holds = row["holds"]
        else:
            holds = f"not yet at {PAPER_EPOCHS} epochs; at {scale.split(',', 1)[0]}: {row['holds']}"
        # the paper's own value wherever claims.csv states one, else the sign of its trend
        paper = claims.reading(claim["paper_value"], claim["quantity"]) \
            or {"positive": "> 0", "negative": "< 0"}[claim["holds_if"]]
        rows.append({
            "claim": claim["claim"], "paper": paper, "rule": claims.rule(claim),
            "ours": "" if row is None else claims.reading(row["ours"], claim["quantity"]),
            "holds": holds, "our scale": scale, "chapter": CHAPTERS.get(claim["figure"], ""),
        })
    return pd.DataFrame(rows)


def verdict_summary(table: pd.DataFrame) -> str:
    """The verdict in one sentence, counted from its table (:func:`verdict`)."""
    at_scale = table[table["holds"].isin(["yes", "no"])]
    smaller = table["holds"].str.startswith("not yet at").sum()
    missing = (table["holds"] == "not yet run").sum()
    held = (at_scale["holds"] == "yes").sum()
    are = lambda n, verb="are": f"{n} {verb if n != 1 else {'are': 'is', 'do': 'does'}[verb]}"  # noqa: E731
    return (f"Of the paper's {len(table)} headline claims, {are(len(at_scale))} answered at its {PAPER_EPOCHS} "
            f"epochs: {held} hold{'s' if held == 1 else ''} and {are(len(at_scale) - held, 'do')} not. "
            f"{are(smaller)} answered only by shorter runs, which hint at the answer but do not settle it, "
            f"and {are(missing)} not run yet.")


def verdict_html(table: pd.DataFrame, chapter_prefix: str = "../chapters/") -> str:
    """The verdict as an HTML table whose chapter column links to the chapter (from the landing
    page, book/index, the chapters are one folder up)."""
    table = table.assign(chapter=[f'<a href="{chapter_prefix}{c}.html">{int(c[:2])}</a>' if c else ""
                                  for c in table["chapter"]])
    return table.to_html(index=False, escape=False, classes="verdict", border=0)


# --------------------------------------------------------------------------- tables for reading

def plain(value: float) -> str:
    """A number as a reader reads it, never in scientific notation: one decimal from 1 up
    (accuracies, points, hours), three significant digits below (fractions, thresholds)."""
    if value != value:  # NaN
        return ""
    if value == 0 or abs(value) >= 1:
        return f"{value:,.1f}"
    return f"{value:.3g}" if abs(value) >= 1e-3 else f"{value:.6f}".rstrip("0")


TABLE_CSS = [  # wrap long cells, so that no table is wider than the page's content column
    {"selector": "", "props": [("max-width", "100%"), ("table-layout", "auto"), ("border-collapse", "collapse"),
                               ("font-size", "0.85em")]},
    {"selector": "td, th", "props": [("white-space", "normal"), ("overflow-wrap", "break-word"),
                                     ("padding", "2px 6px"), ("text-align", "left")]},
]


def table(frame: pd.DataFrame):
    """A table for reading: no index, plain numbers, long cells wrapped."""
    styler = frame.style.hide(axis="index").format(
        lambda v: plain(v) if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) and not isinstance(v, bool)
                                                         else v), na_rep="")
    return styler.set_table_styles(TABLE_CSS)


INIT_HEADERS = {"bn_init": "BatchNorm init", "feature_init": "feature init"}


def named_inits(frame: pd.DataFrame) -> pd.DataFrame:
    """``bn_init`` / ``feature_init`` as a page shows them: the paper's names of the
    initialisations (γ=1, He uniform, ...) under a readable header; the store keeps its names."""
    return frame.assign(**{kind: frame[kind].map(lambda name: init_name(kind, name))
                           for kind in INIT_HEADERS if kind in frame}).rename(columns=INIT_HEADERS)


GAMMA_STATS = {"gamma_mean": "γ mean", "gamma_std": "γ std", "gamma_frac_abs_below_0.01": "|γ| < 0.01 (%)",
               "gamma_frac_abs_below_0.1": "|γ| < 0.1 (%)", "gamma_frac_negative": "γ < 0 (%)",
               "beta_mean": "β mean", "beta_std": "β std"}


def gamma_stats(gammas: pd.DataFrame, by: tuple[str, ...] = ("model", "mode")):
    """Figure 5's statistics of each experiment (``gammas``: :func:`bnlib.analysis.gamma_table`),
    mean over its seeds, as a table for reading: fractions as percentages, the paper's names of
    columns and initialisations."""
    if gammas.empty:
        return table(pd.DataFrame(columns=[*by, *GAMMA_STATS.values()]))
    means = gammas.groupby(list(by), sort=False)[list(GAMMA_STATS)].mean()
    fractions = [c for c in GAMMA_STATS if "_frac_" in c]
    means[fractions] = 100 * means[fractions]
    return table(named_inits(means.reset_index()).rename(columns=GAMMA_STATS))


def gamma_stats_vs_paper(gammas: pd.DataFrame, network: str):
    """The statistics of γ and β that the paper reports for ``network`` (Figures 5 and 6, from
    data/paper/claims.csv) beside ours (``gammas``: :func:`bnlib.analysis.gamma_table`, mean over
    seeds): a row per mode and statistic; empty where the paper reports none."""
    from . import claims

    board = claims.load_claims()
    board = board[(board["network"] == network) & board["quantity"].isin(
        ["gamma_mean", "gamma_std", "gamma_frac_negative", "gamma_frac_abs_below", "beta_mean", "beta_std"])]
    mine = gammas[gammas["model"] == network] if len(gammas) else gammas
    rows = []
    for claim in board.itertuples():
        column = claim.quantity + (f"_{float(claim.threshold):g}" if claim.quantity == "gamma_frac_abs_below" else "")
        mode = paper_label(claim.trainable, network)
        values = mine.loc[mine["mode"] == mode, column] if column in mine else pd.Series(dtype=float)
        rows.append({"mode": mode, "statistic": GAMMA_STATS[column].removesuffix(" (%)"),
                     "paper": claims.reading(claim.paper_value, claim.quantity),
                     "ours": claims.reading(values.mean(), claim.quantity) if len(values) else "not run"})
    return table(pd.DataFrame(rows, columns=["mode", "statistic", "paper", "ours"]))


def clamped_table(curves: pd.DataFrame):
    """Figure 7 as a table for reading: test accuracy (%) after clamping |γ| below each
    threshold to 0, and the share of γ that this clamps (the paper: 24-37% of a BN-only
    ResNet-110's γ below 0.01-0.1), means over seeds, a row per network and mode, a column per
    threshold: "62.1 (24% of γ)"."""
    kept = curves[curves["keep"] == "value"] if len(curves) else curves
    if kept.empty:
        return table(pd.DataFrame(columns=["model", "mode"]))
    means = kept.pivot_table(index=["model", "mode"], columns="threshold", values=["test_accuracy", "fraction_clamped"],
                             sort=False)
    cells = pd.DataFrame(index=means.index)
    for t in means["test_accuracy"].columns:
        accuracy, fraction = means["test_accuracy"][t], means["fraction_clamped"][t]
        cells["unclamped" if t == 0 else f"|γ| < {t:g}"] = [
            f"{a:.1f}" if t == 0 else f"{a:.1f} ({100 * f:.0f}% of γ)" for a, f in zip(accuracy, fraction)]
    return table(cells.reset_index())


def binarised_table(curves: pd.DataFrame):
    """Section 5 as a table for reading: test accuracy (%) after clamping |γ| below the
    threshold to 0 and setting every other γ to ±1, or to ± the mean |γ|, mean over seeds, a
    row per network and mode, beside the unclamped accuracy (chance is 10%)."""
    names = {"value": "unclamped", "one": "others to ±1", "mean": "others to ±mean|γ|"}
    chosen = curves[(curves["keep"] != "value") | (curves["threshold"] == 0)] if len(curves) else curves
    if chosen.empty:
        return table(pd.DataFrame(columns=["model", "mode", *names.values()]))
    cells = chosen.assign(kind=[names[k] if k == "value" else f"|γ| < {t:g} to 0, {names[k]}"
                                for k, t in zip(chosen["keep"], chosen["threshold"])])
    return table(cells.pivot_table(index=["model", "mode"], columns="kind", values="test_accuracy", sort=False)
                 .reset_index().rename_axis(columns=None))


def inventory_table(inventory: pd.DataFrame):
    """:func:`bnlib.analysis.run_inventory` for reading: the paper's names of modes and
    initialisations, readable headers, and the hardware and data said once above the table
    when every experiment shares them."""
    shown = named_inits(inventory.assign(trainable=with_labels(inventory)["mode"]))
    if shown["normalize"].astype(bool).all():
        shown = shown.drop(columns="normalize")  # Appendix E's γ/β without N says so in its mode
    for column in ("hardware", "data"):
        if shown[column].nunique() == 1:
            print(f"{column}: {shown[column].iloc[0]}")
            shown = shown.drop(columns=column)
    return table(shown.rename(columns={"trainable": "mode", "train_hours": "hours", "images_per_s": "images/s"}))


def readable_claims(board: pd.DataFrame) -> pd.DataFrame:
    """Claims' values (``paper``, ``ours``, ``ours (...)``) as a reader reads them, by each
    claim's ``quantity``: fractions as percentages, accuracies in points (:func:`claims.reading`)."""
    from . import claims

    if "quantity" not in board:
        return board
    columns = [c for c in board.columns if c == "paper" or c.startswith("ours")]
    return board.assign(**{c: [claims.reading(v, q) for v, q in zip(board[c], board["quantity"])]
                           for c in columns}).drop(columns="quantity")


def claim_networks(claim: pd.Series) -> set[str]:
    """The networks a claim's runs are of: its own, and the one it compares with (``reference``
    ``network=...``)."""
    reference = str(claim["reference"]) if claim["reference"] == claim["reference"] else ""
    return {claim["network"]} | ({reference.removeprefix("network=")} if reference.startswith("network=") else set())


def _commands_for(ids: pd.Series, plan: Plan | None) -> dict[str, list[str]]:
    """The sweep that makes each claim's runs: the chapter's profile where its grid has the
    claim's networks, else the paper profile (every network of the paper)."""
    from . import claims

    by_id = claims.load_claims().set_index("id")
    commands: dict[str, list[str]] = {}
    for claim_id in ids:
        profile = plan.profile.name if plan is not None and claim_networks(by_id.loc[claim_id]) <= set(
            plan.networks()) else "paper"
        commands.setdefault(f"python -m bnlib sweep --profile {profile}", []).append(claim_id)
    return commands


def claims_table(board: pd.DataFrame, plan: Plan | None = None,
                 columns: tuple[str, ...] = ("id", "claim", "paper", "ours", "holds", "per seed", "scale")):
    """A scoreboard as a reader reads it: the claims its runs answer, then one line per chapter
    for the claims not run yet at this scale, with the command that runs them."""
    answered = readable_claims(board[board["holds"] != "not run"])
    missing = board[board["holds"] == "not run"]
    if len(missing):
        for chapter, part in missing.groupby(missing["figure"].map(lambda f: CHAPTERS.get(f, "")), sort=True):
            where = f"chapter {int(chapter[:2])}" if chapter else "other"
            for command, ids in _commands_for(part["id"], plan).items():
                print(f"{where}: {len(ids)} claim(s) not run at this scale ({', '.join(ids)}); run them with "
                      f"{command}")
    return table(answered[[c for c in columns if c in answered.columns]])


# --------------------------------------------------------------------------- the scale bridge

def scale_bridge(models: tuple[str, ...] = ("resnet-14", "resnet-32"), modes: tuple[str, ...] = ("BN", "All"),
                 runs_root: Path | None = None, reencoded: bool = False) -> pd.DataFrame:
    """Chapter 9's scale bridge: every finished run of ``models`` in ``modes`` (the default
    initialisations, Appendix B's recipe) from every store the book ships, at every number of
    epochs: accuracy, γ statistics, the cost of clamping and the seconds it took
    (:func:`bnlib.analysis.scale_rows`). The runs on the copy re-encoded at other qualities
    (the price of JPEG) only with ``reencoded``: a training length's mean must not mix them in."""
    runs = shipped_runs(runs_root)
    if runs.empty:
        return pd.DataFrame(columns=analysis.SCALE_COLUMNS)
    from .claims import on_recipe

    runs = default_inits(runs)
    chosen = runs[runs["model"].isin(models) & runs["mode"].isin(modes) & on_recipe(runs, reencoded)]
    return analysis.scale_rows(chosen)


def scale_lines(bridge: pd.DataFrame, value: str, unit: str = "%", scale: float = 1.0) -> list[str]:
    """One line per network and mode: ``value`` at each training length, mean over seeds (the
    chapter's text about what changes with training length is computed, not typed), and how
    sure it is: the seeds behind each length, whether the means fall in order, and how far two
    seeds of one length lie apart."""
    lines = []
    for (model, mode), part in bridge.groupby(["model", "mode"], sort=False):
        part = part.dropna(subset=[value])
        if part.empty:
            continue
        by_length = part.groupby("epochs")[value]
        means, seeds = by_length.mean(), by_length.size()
        steps = " → ".join(f"{scale * v:.1f}{unit} at {int(e)}" for e, v in means.items())
        moves = means.diff().dropna()
        order = ("one length only" if moves.empty else "rises at every step" if (moves > 0).all()
                 else "falls at every step" if (moves < 0).all() else "not in order")
        spread = (by_length.max() - by_length.min())[seeds > 1]
        noise = (f"; seeds of one length differ by up to {scale * spread.max():.1f}"
                 f"{' points' if unit == '%' else unit}" if len(spread) else "; one seed at each length")
        counts = "/".join(str(int(n)) for n in seeds)
        lines.append(f"{model} {mode}: {steps} epochs ({order}; seeds {counts}{noise})")
    return lines


def jpeg_lines(price: pd.DataFrame, comparison: pd.DataFrame, bridge: pd.DataFrame | None = None) -> list[str]:
    """What the price of the JPEG copy (:func:`bnlib.analysis.jpeg_price`) and the published
    accuracies (``comparison``: model, published, ours, gap) say, in sentences computed from
    them: the chapter's conclusion is not typed. With ``bridge``, the largest difference
    between two seeds of one ResNet-14 experiment says how far one seed's accuracy can move."""
    lines = []
    for row in price.to_dict("records"):
        if row["points per 10 quality"] != row["points per 10 quality"]:  # NaN: one quality only
            continue
        qualities = ", ".join(f"{row[c]:.1f}% at {c.removeprefix('quality ')}" for c in row
                              if c.startswith("quality ") and row[c] == row[c])
        cost = row["copy's cost, extrapolated"]
        lines.append(f"ResNet-14 {row['mode']}, 16 epochs: {qualities}: {row['points per 10 quality']:+.2f} points "
                     f"per 10 quality points; extrapolated along that line to quality 100, the copy costs "
                     f"{cost:.1f} points.")
    for row in comparison.to_dict("records"):
        lines.append(f"{row['model']} All, 160 epochs: {row['ours']:.1f}% on the copy against {row['published']:.1f}% "
                     f"published on the original images ({row['gap']:+.1f} points).")
    all_price = price[price["mode"] == "All"] if len(price) else price
    if len(all_price) and len(comparison) and all_price["copy's cost, extrapolated"].notna().all():
        cost, deficit = float(all_price["copy's cost, extrapolated"].iloc[0]), -float(comparison["gap"].mean())
        if deficit > 0:
            share = "most of" if cost >= 0.5 * deficit else "a part of" if cost >= 0.1 * deficit else "little of"
            lines.append(f"If the price measured at 16 epochs carries over to 160 epochs, the copy explains {share} "
                         f"the {deficit:.1f}-point gap to the published accuracies ({cost:.1f} points extrapolated)"
                         + ("." if share == "most of" else
                            "; the rest lies elsewhere (a single seed, the recipe, the software or the hardware)."))
    if bridge is not None and len(price):
        seeds = bridge[bridge["model"] == "resnet-14"].groupby(["mode", "epochs"])["test_accuracy"]
        spread = (seeds.max() - seeds.min())[seeds.size() > 1]
        if len(spread) and (price["fewest seeds"] == 1).any():
            one_each = (price["runs"] == price.filter(like="quality ").notna().sum(axis=1)).all()
            lines.append(f"{'Each quality has' if one_each else 'Some qualities have'} one seed, and two seeds of "
                         f"one ResNet-14 experiment differ by up to {spread.max():.1f} points here: the price above "
                         "is an indication, not a measurement to the point.")
    return lines


def published_comparison(bridge: pd.DataFrame) -> pd.DataFrame:
    """Our All networks at 160 epochs (mean over seeds, from :func:`scale_bridge`) beside the
    accuracies published for them on the original images: model, published, ours, gap, source."""
    published = published_accuracies()
    ours = bridge[(bridge["mode"] == "All") & (bridge["epochs"] == 160)].groupby("model")["test_accuracy"].mean()
    both = published.assign(ours=published["model"].map(ours)).dropna(subset=["ours"])
    return pd.DataFrame({"model": both["model"], "published": both["test_accuracy"], "ours": both["ours"],
                         "gap": both["ours"] - both["test_accuracy"], "source": both["source"]}).reset_index(drop=True)


def published_accuracies() -> pd.DataFrame:
    """Accuracies published for the same CIFAR ResNets trained normally on the original images
    (data/paper/published.csv, with their sources): the second line of evidence on what the
    JPEG copy costs."""
    return pd.read_csv(ROOT / "data" / "paper" / "published.csv")

