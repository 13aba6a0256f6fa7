"""``python -m bnlib``: ``params`` prints Table 1, ``train`` trains (or finds) one run,
``sweep`` trains a grid on Ray, ``check`` lists the state of every run of a store, ``clamp``
re-evaluates a run with its small gammas set to 0, ``data reencode`` writes a data set again as
JPEG at another quality, ``pages`` makes the book's page per network, ``bench`` compares the
trainer with a plain PyTorch loop, ``estimate`` projects a profile's device-hours here.

Every config field is a ``train`` flag of the same name (``bn_init`` -> ``--bn-init``). Bad
input exits with status 2 and one line on stderr, before anything is written. The last line
``train``, ``sweep`` and ``bench`` print on stdout is one JSON object.

``train`` and ``sweep`` take ``--time-limit`` (``90s``, ``9m``, ``2h``, ``1h30m``, ``1d12h``):
a run stops at the last epoch boundary that fits, keeps its checkpoint and resumes when the
command is run again. Exit status: 0 when every run finished (complete or diverged), 3
(``EXIT_STOPPED``) when the time limit stopped a run or kept one from starting, 1 when a sweep's
run failed after its retries (the sweep names them), 2 on bad input, including a sweep setting
the machine or cluster cannot meet. 3 comes before 1: running the same sweep again resumes the
stopped runs and retries the failed ones, so a job that resubmits itself on 3 goes on.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any, Sequence

from .config import ConfigError, RunConfig, all_fields
from .experiments import EXPERIMENT_STORES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, like every other bad input
        sys.stderr.write(f"bnlib: error: {message}\n")
        sys.exit(2)


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


EXIT_STOPPED = 3  # the time limit stopped a run: run the same command again to resume it
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it: 128 + the signal's number
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_MAX_RETRIES = 10  # bnlib.sweep.MAX_RETRIES, without importing Ray's module at start-up
MAX_DURATION = 366 * 86400  # a year: longer than any allocation, and far from a float's range


def parse_duration(text: str) -> float:
    """``90s``, ``9m``, ``2h``, ``1h30m``, ``1d12h`` -> seconds: whole numbers, each unit at
    most once, largest first. A bare number is refused: Slurm reads one as minutes, others as seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(
            f"invalid time limit {text!r}: use whole numbers with units d, h, m, s, such as 90s, 9m, 2h or 1h30m")
    if any(v is not None and len(v) > 9 for v in match.groups()):  # before int(): no 400-digit arithmetic
        raise argparse.ArgumentTypeError(f"time limit {text!r} is longer than a year (366d)")
    seconds = sum(int(v) * _UNITS[u] for v, u in zip(match.groups(), _UNITS) if v is not None)
    if seconds > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"time limit {text!r} is longer than a year (366d)")
    return float(seconds)


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= _MAX_RETRIES:
        raise argparse.ArgumentTypeError(f"retries must lie in 0..{_MAX_RETRIES}, got {value}")
    return value


def _add_time_limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--time-limit", type=parse_duration, metavar="DURATION",
                        help="stop at the last epoch boundary that fits in this time (90s, 9m, 2h, 1h30m), "
                             f"keep the checkpoint and exit with status {EXIT_STOPPED}; run again to resume")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for f in all_fields():
        # config.py uses postponed annotations, so f.type is the annotation's text
        kind = {"bool": _boolean, "int": int, "float": float, "str": str}[str(f.type)]
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=f.default,
                            metavar=f.name.upper(), help=f"{f.metadata['help']} (default: {f.default})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bnlib", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser("params", help="print Table 1: parameter counts of the paper's 13 networks")
    check = commands.add_parser("check", help="the state of every run in a results store; exit 1 if any is unreadable")
    check.add_argument("runs_dir", metavar="RUNS_DIR")
    train = commands.add_parser("train", help="train one network (or return its stored result)")
    _add_config_flags(train)
    train.add_argument("--runs-dir", default="runs", help="results store (default: runs)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    _add_time_limit(train)
    sweep = commands.add_parser("sweep", help="train a grid of runs on Ray, skipping finished ones")
    sweep.add_argument("--profile", choices=["smoke", "cpu", "paper"],
                       help="every run the book's chapters need in this profile (instead of a grid)")
    sweep.add_argument("--experiment", choices=list(EXPERIMENT_STORES),
                       help="a named list of runs on --data (instead of a grid): chapter 9's epoch ladder or "
                            "price of JPEG (default store: data/runs/scale; jpeg-price first re-encodes the copies "
                            "it trains on into the data cache), or paper-on-cpu, Appendix B's runs a CPU trains "
                            "in days, in the order that completes one figure at a time (default store: "
                            "data/runs/paper)")
    sweep.add_argument("--models", help="networks, comma separated (default: resnet-14)")
    sweep.add_argument("--trainable", help="modes, comma separated; parts of one mode joined by + "
                       "(bn+shortcut+output) (default: bn)")
    sweep.add_argument("--bn-inits", help="BatchNorm inits, comma separated (default: uniform)")
    sweep.add_argument("--feature-inits", help="feature inits, comma separated (default: he-normal)")
    sweep.add_argument("--seeds", type=int, help="replicates: seeds 0..N-1 (default: 1)")
    sweep.add_argument("--epochs", type=int, help="epochs per run (default: 160)")
    sweep.add_argument("--data", help="data source, as for train (default: cifar10)")
    sweep.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    sweep.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    sweep.add_argument("--compile", default="none", choices=["none", "default", "reduce-overhead"],
                       help="torch.compile for every run (reduce-overhead: CUDA graphs, about twice as fast for "
                            "the paper's ResNets on a GPU; not part of a run's address) (default: none)")
    sweep.add_argument("--runs-dir", help="results store (default: the profile's, else runs)")
    sweep.add_argument("--address", help="an existing Ray cluster (default: start Ray on this machine)")
    sweep.add_argument("--gpus-per-run", type=float, help="GPU share of a run, e.g. 0.25 (default: 1 if GPUs)")
    sweep.add_argument("--pack", type=int, help="runs of one network trained together as one fused network, at "
                       "most N per task; 1 trains each alone (default: 8 on GPUs, 1 on CPUs)")
    sweep.add_argument("--cpus-per-run", type=float, help="CPU slots of a run (default: all cores without GPU)")
    sweep.add_argument("--retries", type=_retries, default=2,
                       help=f"retries of a failed run, 0..{_MAX_RETRIES} (default: 2)")
    sweep.add_argument("--no-progress", action="store_true")
    sweep.add_argument("--log", help="file to append a line per finished run to (as well as stdout)")
    sweep.add_argument("--dry-run", action="store_true", help="list the grid and what is finished; train nothing")
    _add_time_limit(sweep)
    clamp = commands.add_parser("clamp", help="re-evaluate a stored run with its small gammas set to 0 (Figure 7)")
    clamp.add_argument("run_dir", metavar="RUN_DIR", help="a finished run's folder (with its model.pt)")
    clamp.add_argument("--threshold", type=float, required=True, help="gammas with |gamma| below this become 0")
    clamp.add_argument("--binarize", choices=["one", "mean"],
                       help="also set every other gamma to sign(gamma) (one) or sign(gamma)*mean|gamma| (mean)")
    clamp.add_argument("--data", help="the data set the run was trained on (default: this machine's real data)")
    pages = commands.add_parser("pages", help="the book's page per network: book/network.ipynb run by papermill")
    pages.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    pages.add_argument("--runs-dir", help="results store (default: the profile's)")
    data = commands.add_parser("data", help="data sets: re-encode one as JPEG at another quality")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    reencode = data_commands.add_parser("reencode", help="write SRC again as JPEG at --quality into DST (.tar.gz)")
    reencode.add_argument("--quality", type=int, required=True, help="JPEG quality, 1..95 (the copy is 75)")
    reencode.add_argument("src", metavar="SRC", help="a data source, as --data of train takes")
    reencode.add_argument("dst", metavar="DST", nargs="?",
                          help="the .tar.gz to write (default: in the data cache, named <src>-q<Q>.tar.gz)")
    reencode.add_argument("--replace", action="store_true",
                          help="write over an existing DST (never over SRC itself)")
    bench = commands.add_parser("bench", help="images/s of bnlib's trainer against a plain PyTorch loop")
    bench.add_argument("--model", help="one network (default: resnet-14, resnet-20, resnet-56)")
    bench.add_argument("--trainable", help="one mode (default: bn and all)")
    bench.add_argument("--steps", type=int, default=20, help="SGD steps per measurement (default: 20)")
    bench.add_argument("--rounds", type=int, default=2, help="alternating measurements of each side (default: 2)")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto: a GPU if "
                       "there is one); cuda without a GPU is an error, exit status 2")
    bench.add_argument("--replicates", type=int, default=1, help="fused replicates on bnlib's side (default: 1)")
    bench.add_argument("--pack", type=int, default=1,
                       help="also measure a pack of N runs (the mode and its pack mates) trained as one network: "
                            "aggregate images/s against one run (default: 1, no pack)")
    bench.add_argument("--layouts", action="store_true",
                       help="instead: on the CPU, one run with every thread against one run per core side by "
                            "side and a pack of one run per core (total images/s of each; bnlib.layouts)")
    bench.add_argument("--channels-last", type=_boolean, default=True)
    bench.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    bench.add_argument("--compile", default="none", choices=["none", "default", "reduce-overhead"])
    bench.add_argument("--out", default=None, help="results file to append to (default: data/benchmarks/results.jsonl)")
    estimate = commands.add_parser("estimate", help="device-hours of a profile's experiments, from a few timed steps "
                                   "of each network on this machine")
    estimate.add_argument("--profile", default="paper", help="smoke, cpu or paper (default: paper)")
    estimate.add_argument("--pack", type=int, default=1,
                          help="measure packs of up to N runs trained as one network, and count the packs the "
                               "planner makes (default: 1, one run at a time)")
    estimate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    estimate.add_argument("--steps", type=int, default=3, help="timed SGD steps per measurement, after a warm-up "
                          "step (default: 3)")
    estimate.add_argument("--networks", help="measure only these networks, comma separated; the profile's others "
                          "are extrapolated by the family's cost (default: all of them)")
    estimate.add_argument("--out", nargs="?", const="", default=None, metavar="FILE",
                          help="also append the JSON line to FILE (--out alone: data/benchmarks/estimates.jsonl) "
                               "(default: print only)")
    return parser


def _params() -> int:
    from .models import table1

    rows = table1()
    header = ("network", "D", "W", "batchnorm", "shortcut", "output", "total")
    widths = [max(len(header[i]), *(len(f"{r[h]:,}" if isinstance(r[h], int) else str(r[h])) for r in rows))
              for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
    for r in rows:
        cells = [f"{r[h]:,}" if isinstance(r[h], int) else str(r[h]) for h in header]
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    return 0


def _remaining(args: argparse.Namespace) -> float | None:
    """Seconds of ``--time-limit`` left, counted from when the command started."""
    return None if args.time_limit is None else max(0.0, args.started + args.time_limit - time.time())


def _train(args: argparse.Namespace) -> int:
    from .train import train

    values: dict[str, Any] = {f.name: getattr(args, f.name) for f in all_fields()}
    config = RunConfig.from_flat(**values)

    def report(row: dict[str, float]) -> None:
        print(f"epoch {row['epoch']:>4}  lr {row['lr']:.4g}  train loss {row['train_loss']:.4f}  "
              f"train acc {row['train_accuracy']:.2f}%  test acc {row['test_accuracy']:.2f}%  "
              f"{row['images_per_s']:.0f} img/s", file=sys.stderr, flush=True)

    result = train(config, args.runs_dir, progress=sys.stderr.isatty() and not args.no_progress, on_epoch=report,
                   time_limit=_remaining(args), refuse_unfit=True)
    if result.status == "stopped":
        print(f"stopped by the time limit after epoch {result.epochs_completed} of {config.train.epochs}; "
              "run the same command again to resume", file=sys.stderr, flush=True)
    print(json.dumps(result.to_dict()))
    return EXIT_STOPPED if result.status == "stopped" else 0


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .bench import RESULTS, SUITE_MODELS, SUITE_MODES, bench
    from .architectures import lookup

    if args.model:
        lookup(args.model)
    if args.steps < 1 or args.rounds < 1 or args.replicates < 1 or args.pack < 1:
        raise ConfigError("steps, rounds, replicates and pack must be >= 1")
    grid = [(m, t) for m in ([args.model] if args.model else SUITE_MODELS)
            for t in ([args.trainable] if args.trainable else SUITE_MODES)]
    if args.layouts:
        from .layouts import layouts

        for model, trainable in grid:
            row = layouts(model, trainable, steps=args.steps, rounds=args.rounds,
                          out=Path(args.out) if args.out else RESULTS)
            speeds = "  ".join(f"{k} {v:8.1f} img/s ({row['speedup_over_one'][k]:.2f}x)"
                               for k, v in row["images_per_s"].items())
            print(f"{model:>10} {trainable:>4}  {row['runs']} runs: {speeds}", file=sys.stderr, flush=True)
            print(json.dumps(row), flush=True)
        return 0
    for model, trainable in grid:
        row = bench(model, trainable, steps=args.steps, rounds=args.rounds, device=args.device,
                    replicates=args.replicates, channels_last=args.channels_last, precision=args.precision,
                    compile=args.compile, pack=args.pack, out=Path(args.out) if args.out else RESULTS)
        packed = (f"  pack of {row['pack']} {row['pack_images_per_s']:8.1f} img/s ({row['pack_speedup']:.2f}x)"
                  if "pack" in row else "")
        print(f"{model:>10} {trainable:>4}  bnlib {row['images_per_s']:8.1f} img/s  reference "
              f"{row['reference_images_per_s']:8.1f} img/s  ratio {row['ratio']:.2f}  "
              f"{100 * row['fraction_of_matmul_rate']:.1f}% of matmul rate{packed}", file=sys.stderr, flush=True)
        print(json.dumps(row), flush=True)
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .estimate import ESTIMATES, append, estimate, table

    networks = [n.strip() for n in (args.networks or "").split(",") if n.strip()]
    result = estimate(args.profile, pack=args.pack, device=args.device, steps=args.steps, networks=networks,
                      log=lambda text: print(text, file=sys.stderr, flush=True))
    if args.out is not None:
        append(result, Path(args.out) if args.out else ESTIMATES)
    print(table(result), flush=True)
    print(json.dumps(result), flush=True)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from . import sweep

    def items(text: str | None, default: str) -> list[str]:
        return [v.strip() for v in (text or default).split(",") if v.strip()]

    if args.experiment:
        grid_flags = [f"--{f.replace('_', '-')}" for f in ("profile", "models", "trainable", "bn_inits",
                                                            "feature_inits", "seeds", "epochs")
                      if getattr(args, f) is not None]
        if grid_flags:
            raise ConfigError(f"--experiment fixes its own runs: drop {', '.join(grid_flags)}")
        configs = [c.replace(device=args.device) for c in _experiment(args.experiment, args.data or "cifar10")]
        args.runs_dir = args.runs_dir or EXPERIMENT_STORES[args.experiment]  # where the book looks
    elif args.profile:
        from .experiments import PROFILES

        configs = sweep.profile_grid(args.profile, seeds=args.seeds, epochs=args.epochs, data=args.data,
                                     device=args.device)
        args.runs_dir = args.runs_dir or PROFILES[args.profile].runs_dir  # where the chapters look
    else:
        configs = sweep.grid(
            items(args.models, "resnet-14"), [m.replace("+", ",") for m in items(args.trainable, "bn")],
            1 if args.seeds is None else args.seeds, 160 if args.epochs is None else args.epochs,
            args.data or "cifar10", items(args.bn_inits, "uniform"), items(args.feature_inits, "he-normal"),
            device=args.device, precision=args.precision)
    configs = [c.replace(compile=args.compile) for c in configs]
    if args.dry_run:  # the grid, in the order it would run, and what is finished
        finished = sweep.is_finished(configs, args.runs_dir or "runs")
        for config, done in zip(configs, finished):
            c = config.flat()
            print(f"{'done' if done else 'todo'} {c['model']} trainable={c['trainable']} bn_init={c['bn_init']} "
                  f"feature_init={c['feature_init']} normalize={c['normalize']} seed={c['seed']} epochs={c['epochs']}")
        print(json.dumps({"runs": len(configs), "done": sum(finished), "todo": len(configs) - sum(finished)}))
        return 0
    if args.pack is not None and args.pack < 1:
        raise ConfigError(f"--pack must be a whole number >= 1, got {args.pack}")
    counts = sweep.run(configs, args.runs_dir or "runs", address=args.address, gpus_per_run=args.gpus_per_run,
                       cpus_per_run=args.cpus_per_run, retries=args.retries, progress=not args.no_progress,
                       log=args.log, pack=args.pack,
                       deadline=None if args.time_limit is None else args.started + args.time_limit)
    print(json.dumps(counts))
    if counts["stopped"]:  # first: running the same command again also retries the failed runs
        return EXIT_STOPPED
    return 1 if counts["failed"] else 0  # the FAILED lines name the runs


def _experiment(name: str, data: str) -> list[RunConfig]:
    """The runs of a named experiment on ``data``; for the price of JPEG, the copies re-encoded
    from ``data`` are made first where the data cache lacks them."""
    from . import experiments

    if name == "scale-ladder":
        return experiments.scale_ladder(data)
    if name == "paper-on-cpu":
        return experiments.paper_on_cpu(data)
    from .reencode import default_destination, reencode

    copies = {}
    for quality in experiments.JPEG_QUALITIES:
        path = default_destination(data, quality)
        if not path.is_file():
            print(f"re-encoding {data} at quality {quality} into {path}", file=sys.stderr)
            reencode(data, quality, path)
        copies[quality] = str(path)
    return experiments.jpeg_price(copies)


def _data(args: argparse.Namespace) -> int:
    from . import data
    from .reencode import reencode

    path = reencode(args.src, args.quality, args.dst, replace=args.replace)
    dataset = data.load(str(path))
    print(f"{path}: {data.summary(dataset)}", file=sys.stderr)
    # the quality and label measured from the written files, not taken from the name or the flag
    print(json.dumps({"path": str(path), "quality": args.quality, "measured_quality": dataset.jpeg_quality,
                      "data_fingerprint": dataset.fingerprint,
                      "data_source": data.describe_data(dataset.describe())}))
    return 0


def _clamp(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import analysis, results

    run = Path(args.run_dir)
    if not args.threshold >= 0:
        raise ConfigError(f"threshold must be >= 0, got {args.threshold}")
    try:  # a run proves what it is before its weights are read
        results.read_run_config(run)
        if not (run / results.RESULT).is_file():
            raise results.Unreadable(run / results.RESULT, "is missing: the run has not finished")
        results.read_result(run)
    except results.Unreadable as error:
        raise ConfigError(f"{run} is not a finished run that can be read: {error}") from None
    if not (run / results.MODEL).is_file():
        raise ConfigError(f"{run} has no {results.MODEL}: its weights were not kept")
    try:
        model = analysis.load_model(run)
    except Exception as error:  # cut, random, another network's or a mismatched compact file
        raise ConfigError(f"{run / results.MODEL}: cannot be loaded as this run's weights "
                          f"({results._one_line(error)})") from None
    accuracy, fraction = analysis.clamped_accuracy(model, analysis.data_of(run, args.data), args.threshold,
                                                   args.binarize or "value")
    print(json.dumps({"run_dir": str(run), "threshold": args.threshold, "keep": args.binarize or "value",
                      "fraction_clamped": fraction, "test_accuracy": accuracy}))
    return 0


def _pages(args: argparse.Namespace) -> int:
    from .pages import network_pages

    written = network_pages(args.profile, runs_dir=args.runs_dir)
    print(json.dumps({"profile": args.profile, "pages": [str(p) for p in written]}))
    return 0


def _check(args: argparse.Namespace) -> int:
    from collections import Counter

    from . import results

    try:
        states = results.check(args.runs_dir)
    except results.Unreadable as error:
        raise ConfigError(str(error)) from None
    for s in states:
        epochs = f"{s['epochs']} epoch(s)" if s["state"] != "unreadable" else ""
        print(f"{s['run']}  {s['state']:<11} {epochs:<12} {s['detail']}".rstrip())
    counts = Counter(s["state"] for s in states)
    print(json.dumps({"runs": len(states), **{k: counts.get(k, 0) for k in (
        "complete", "diverged", "stopped", "interrupted", "training", "unreadable")}, "runs_dir": args.runs_dir}))
    return 1 if counts.get("unreadable") else 0


def main(argv: Sequence[str] | None = None) -> int:
    started = time.time()  # a --time-limit counts from here: reading the data is part of it
    args = build_parser().parse_args(argv)
    args.started = started
    try:
        commands = {"params": _params, "train": lambda: _train(args), "bench": lambda: _bench(args),
                    "estimate": lambda: _estimate(args),
                    "sweep": lambda: _sweep(args), "check": lambda: _check(args),
                    "data": lambda: _data(args), "clamp": lambda: _clamp(args),
                    "pages": lambda: _pages(args)}
        return commands[args.command]()
    except KeyboardInterrupt:
        # Every file of a run is written whole or not at all (results._atomic_write) and the
        # checkpoint is the last finished epoch's, so any moment is a safe point to stop.
        sys.stderr.write("bnlib: interrupted; run the same command again to resume\n")
        return EXIT_INTERRUPTED
    except ConfigError as error:
        sys.stderr.write(f"bnlib: error: {error}\n")
        return 2
    except OSError as error:  # a full disk, a folder removed under a run: one line naming the path
        where = f"{error.filename}: " if error.filename else ""
        sys.stderr.write(f"bnlib: error: {where}{error.strerror or error}\n")
        return 1
