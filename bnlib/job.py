"""A prepared GPU job: the GPU path checked and measured, then the runs that answer most claims.

A time-limited GPU job (a Slurm allocation, a preemptible instance, a shared slot) runs
``scripts/gpu-job.py --budget 9m`` once; in that time it does, in order:

a. **environment**: records python, torch, CUDA and the GPU (``nvidia-smi``) and imports what the
   job needs. It installs nothing: a missing module is installed only from wheels carried with
   the job (``--wheels DIR``, ``pip --no-index``), else the job stops with one line naming it.
b. **check**: the paper's six modes (Figures 1 and 2) x 2 seeds of a tiny network as one pack on
   the device, eager and compiled, against the same pack on the CPU: within the packed tests'
   tolerance, and every frozen tensor bit-identical to its initial value (a compact checkpoint
   rebuilds them from the seed: a changed one would be set aside on resume).
c. **bench**: in one process, alternating, a compiled ResNet-14 BN-only run against packs of 8
   and 24, ResNet-110 and ResNet-866 alone against packed (:func:`bnlib.bench.bnlib_images_per_s`),
   one JSON line each with hardware, torch version and date.
d. **estimate**: ``python -m bnlib estimate`` of the profile, one run at a time and in packs.
e. **train**: the runs the store lacks, in the order :func:`claim_order` gives (claims of the
   paper answered per device-second, priced by d's estimate), packed, with the time left as the
   time limit; stopped runs keep their checkpoints (compact where convolutions are frozen).
f. **archive**: every new or changed file of the store, the job's records and its measurements
   in one ``.tar.gz`` within a size limit (:func:`pack_archive`), saying what was left out.

No step's failure stops the later ones but training: runs are trained only when the check
passed in the compile mode they train with, and no variant changed a frozen tensor, since a
device that breaks the pack path would write wrong runs into the store.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import importlib.util
import io
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE_LIMIT = 16 * 2**20  # what one file that comes back from such a job may weigh
# What the job imports beyond the standard library; each is on a GPU machine's torch install or
# carried as a wheel. Ray is not needed: the job trains its packs in its own process.
REQUIRED = ("torch", "numpy", "pandas", "PIL")
WHEEL_NAMES = {"PIL": "pillow"}
# ResNet-14 and ResNet-110 BN-only train on a CPU meanwhile (paper-on-cpu): the job leaves them
# to it and counts them as there when it orders the rest by the claims they answer.
CPU_MEANWHILE = "resnet-14,resnet-110:bn"
# c's measurements: (network, compile, pack sizes); the first size of each is the baseline.
BENCH_PLAN = "resnet-14/reduce-overhead/1+8+24,resnet-14/none/1+24,resnet-110/none/1+8,resnet-866/none/1+8"
ESTIMATE_NETWORKS = "resnet-14,resnet-110,resnet-866,wrn-14-4,wrn-14-32"  # the rest extrapolated by cost
TOLERANCE = {"rtol": 1e-3, "atol": 1e-4}  # tests/test_fused.py and test_packs.py: grouped vs plain convs
ARCHIVE_RESERVE_S = 30.0  # kept from e for f: hashing the store and writing the archive
STEPS = "abcdef"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- a. environment

def environment(wheels: str | Path | None = None, required: Sequence[str] = REQUIRED) -> dict[str, Any]:
    """What the job runs on; raises RuntimeError naming a module that is neither installed nor
    among the carried ``wheels`` (installed from there with ``pip --no-index``: no network)."""
    missing = [m for m in required if importlib.util.find_spec(m) is None]
    if missing and wheels:
        names = [WHEEL_NAMES.get(m, m) for m in missing]
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), *names],
                       check=False, capture_output=True)
        importlib.invalidate_caches()
        missing = [m for m in missing if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)}; carry their wheels and pass --wheels DIR "
                           "(the job installs nothing from the network)")
    import torch

    smi = shutil.which("nvidia-smi")
    return {"python_version": platform.python_version(), "torch_version": torch.__version__,
            "cuda_version": torch.version.cuda, "cudnn_version": torch.backends.cudnn.version(),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
            "nvidia_smi": subprocess.run([smi], capture_output=True, text=True).stdout if smi else None,
            "date": _now()}


# --------------------------------------------------------------------------- b. check

def check_modes() -> tuple[str, ...]:
    """The paper's six modes: Figure 2's five and Figure 1's gamma/beta frozen."""
    from .experiments import FIGURE1_MODES, FIGURE2_MODES

    return tuple(dict.fromkeys(FIGURE2_MODES + FIGURE1_MODES))


def _deviation(a, b) -> float:
    """How far ``a`` is past the tolerance around ``b`` (<= 0: within it)."""
    a, b = a.float(), b.float()
    return float(((a - b).abs() - (TOLERANCE["atol"] + TOLERANCE["rtol"] * b.abs())).max()) if a.numel() else 0.0


def check_gpu_path(device: str, scratch: str | Path, compiles: Sequence[str] = ("none", "reduce-overhead"),
                   model: str = "resnet-8", epochs: int = 2) -> dict[str, Any]:
    """b: a pack of :func:`check_modes` x 2 seeds of ``model`` on synthetic data, trained on
    ``device`` in each ``compiles`` mode, against the same pack on the CPU. ``passed``: every
    run within :data:`TOLERANCE` of its CPU twin (accuracies within a point: one test image of
    128 is 0.8) and every frozen tensor bit-identical to its initial value.

    Small batches of few images: the pack path (masked SGD, momentum, the lr schedule, one
    checkpoint per epoch) runs 8 steps, and the CPU side stays seconds, not minutes."""
    import torch

    from . import analysis, compact, data as data_lib
    from .config import RunConfig
    from .freezing import trainable_names
    from .train import train_pack

    tiny = data_lib.synthetic(train_size=64, test_size=128)
    configs = [RunConfig.from_flat(model=model, data="synthetic", epochs=epochs, seed=s, trainable=m, batch_size=16)
               for m in check_modes() for s in (0, 1)]
    scratch = Path(scratch)
    reference = train_pack([c.replace(device="cpu") for c in configs], scratch / "cpu", dataset=tiny)
    out: dict[str, Any] = {"model": model, "runs": len(configs), "epochs": epochs, "device": device,
                           "tolerance": TOLERANCE, "variants": {}}
    for mode in compiles:
        started = time.time()
        runs = train_pack([c.replace(device=device, compile=mode) for c in configs], scratch / f"device-{mode}",
                          dataset=tiny)
        worst, worst_name, largest, accuracy_gap, frozen_changed = -math.inf, "", 0.0, 0.0, []
        for c, run, ref in zip(configs, runs, reference):
            mine, theirs = analysis.load_weights(run.run_dir), analysis.load_weights(ref.run_dir)
            for name in theirs:
                if theirs[name].numel():
                    largest = max(largest, float((mine[name].float() - theirs[name].float()).abs().max()))
                d = _deviation(mine[name], theirs[name])
                if d > worst:
                    worst, worst_name = d, f"{c.train.trainable} seed {c.train.seed}: {name}"
            accuracy_gap = max(accuracy_gap, abs(run.test_accuracy - ref.test_accuracy))
            initial = compact.rebuild(c, len(tiny.classes))
            trained = set(trainable_names(initial, c.train.trainable))
            start = initial.state_dict()
            frozen_changed += [f"{c.train.trainable} seed {c.train.seed}: {name}"
                               for name, _ in initial.named_parameters()
                               if name not in trained and not torch.equal(mine[name], start[name])]
        out["variants"][mode] = {
            "seconds": round(time.time() - started, 1), "within_tolerance": worst <= 0,
            "largest_difference": largest, "worst_excess_over_tolerance": worst, "worst_tensor": worst_name,
            "largest_accuracy_gap": round(accuracy_gap, 3), "frozen_changed": frozen_changed,
            "passed": worst <= 0 and accuracy_gap <= 1.0 and not frozen_changed}
    out["passed"] = all(v["passed"] for v in out["variants"].values())
    return out


def trusted(checked: dict[str, Any] | None, compile: str) -> bool:
    """Whether b's check lets runs train with ``compile``: its variant passed (or was not
    checked) and no variant changed a frozen tensor (a compact checkpoint would then not
    resume). Compiled kernels reorder float sums, so a compiled variant may miss the eager
    tolerance and still train correctly; it blocks only the runs compiled that way."""
    if not checked:
        return False
    variants = checked["variants"]
    return (variants[compile]["passed"] if compile in variants else True) and not any(
        v["frozen_changed"] for v in variants.values())


# --------------------------------------------------------------------------- c. bench

def parse_bench_plan(text: str) -> list[tuple[str, str, tuple[int, ...]]]:
    """``resnet-14/reduce-overhead/1+8+24,resnet-110/none/1+8`` -> [(network, compile, sizes)]."""
    plan = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            model, mode, sizes = item.split("/")
            plan.append((model, mode, tuple(int(n) for n in sizes.split("+"))))
        except ValueError:
            raise ValueError(f"bad measurement {item!r}: write NETWORK/COMPILE/SIZES, e.g. resnet-14/none/1+8") \
                from None
    return plan


def measure_packs(device: str, plan: Sequence[tuple[str, str, Sequence[int]]], *, steps: int = 10, rounds: int = 2,
                  out: Path | None = None, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """c: BN-only-style packs of each network against its first size (one run), in total training
    images/s, every measurement of the plan taken once per round in turn so that a busy device
    slows each alike. A pack larger than the device's memory holds (the family's estimate) is
    cut to what fits. One row per measurement, appended to ``out`` as JSON lines."""
    import torch

    from .bench import bnlib_images_per_s, pack_modes, random_dataset
    from .config import RunConfig
    from .packs import plan_packs
    from .train import _device_memory, hardware, resolve_device

    dev = resolve_device(device)
    memory = _device_memory(dev)
    items = []
    for model, mode, sizes in plan:
        config = RunConfig.from_flat(model=model, trainable="bn", device=device, compile=mode, data="synthetic")
        for size in sizes:
            fits = len(plan_packs([config.replace(seed=s) for s in range(size)], max_runs=size,
                                  memory_budget=memory)[0])
            items.append((config, fits, size))
    speeds: list[list[float]] = [[] for _ in items]
    data = random_dataset(steps * 128)
    for _ in range(rounds):
        for i, (config, runs, _) in enumerate(items):
            log(f"bench: {config.model.model} compile={config.train.compile} {runs} run(s)")
            # warmup: a new network's first epoch pays for compiling, graphs and cuDNN's search
            speeds[i].append(bnlib_images_per_s(config, data, runs, warmup=True,
                                                modes=pack_modes(config, runs) if runs > 1 else None))
    rows, baseline = [], {}
    for (config, runs, asked), values in zip(items, speeds):
        key = (config.model.model, config.train.compile)
        total = statistics.median(values)
        baseline.setdefault(key, total / runs)
        rows.append({
            "benchmark": "gpu-job-packs", "model": config.model.model, "trainable": "bn",
            "compile": config.train.compile, "runs": runs, "runs_asked": asked,
            "pack_modes": pack_modes(config, runs), "steps": steps, "rounds": rounds,
            "images_per_s": round(total, 1), "per_run_images_per_s": round(total / runs, 1),
            "speedup_over_one": round(total / baseline[key], 3),
            "device": str(dev), "hardware": hardware(dev), "torch_version": torch.__version__,
            "python_version": platform.python_version(), "date": _now()})
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    return rows


def targets(bench_rows: Sequence[dict[str, Any]], estimates: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The issue's three targets from c and d: a pack of 24+ ResNet-14 runs at 8x one compiled
    run's images/s; packed ResNet-866 at a fifth of its cost per run alone; the packed profile
    at a fifth of its unpacked hours. None where not measured."""
    def best(keep: Callable[[dict[str, Any]], bool]) -> float | None:
        found = [r["images_per_s"] for r in bench_rows if keep(r)]
        return max(found) if found else None

    out: dict[str, Any] = {}
    single = best(lambda r: r["model"] == "resnet-14" and r["runs"] == 1 and r["compile"] == "reduce-overhead")
    pack = best(lambda r: r["model"] == "resnet-14" and r["runs"] >= 24)
    out["resnet-14 pack of 24+ / one compiled run (target >= 8)"] = (
        round(pack / single, 2) if single and pack else None)
    alone = [r for r in bench_rows if r["model"] == "resnet-866" and r["runs"] == 1]
    packed = [r for r in bench_rows if r["model"] == "resnet-866" and r["runs"] > 1]
    out["resnet-866 packed cost per run / alone (target <= 0.2)"] = (
        round(alone[0]["per_run_images_per_s"] / max(r["per_run_images_per_s"] for r in packed), 3)
        if alone and packed else None)
    unpacked = estimates.get(1)
    packs = [v for k, v in estimates.items() if k > 1]
    out["profile hours packed / unpacked (target <= 0.2)"] = (
        round(packs[0]["hours"] / unpacked["hours"], 3) if unpacked and packs else None)
    return out


# --------------------------------------------------------------------------- e. the order of training

@dataclass
class Planned:
    """One run to train: its config, its price (device-seconds of the epochs it lacks) and the
    claims it completes, with the runs before it (``"id"``, or ``"id (seed s)"`` for a further seed)."""

    config: Any
    seconds: float
    answers: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=None)
def _identity(trainable: str, model: str) -> str:
    from .freezing import mode_identity

    return mode_identity(trainable, model)


def run_key(config) -> tuple:
    """What a claim asks of a run: network, trained tensors, inits, normalisation, seed."""
    m = config.model
    return (m.model, _identity(config.train.trainable, m.model), m.bn_init, m.feature_init, m.normalize,
            config.train.seed)


SLOPE_SERIES = {"slope_ratio": "all", "depth_slope": "deep", "width_slope": "wide"}


def claim_needs(claim, series: dict[str, Sequence[str]]) -> list[tuple]:
    """The runs one claim of ``data/paper/claims.csv`` reads (as :mod:`bnlib.claims` computes it),
    as :func:`run_key` without the seed: a slope, every network of its series in the claim's
    mode; a gap, the claim's experiment and its reference; else the claim's experiment."""
    from .architectures import lookup
    from .claims import _override

    def key(network: str, trainable: str, bn_init: str = "uniform", feature_init: str = "he-normal",
            normalize: bool = True) -> tuple:
        name = lookup(network).name
        return (name, _identity(trainable, name), bn_init, feature_init, normalize)

    quantity = claim["quantity"]
    if quantity in SLOPE_SERIES:
        which = SLOPE_SERIES[quantity]
        networks = list(series.get("deep", ())) + list(series.get("wide", ())) if which == "all" else series[which]
        return [key(n, claim["trainable"]) for n in dict.fromkeys(networks)]
    needs = [key(claim["network"], claim["trainable"], claim["bn_init"])]
    if quantity.endswith("_gap"):
        ref = _override(claim)
        needs.append(key(ref["network"], ref["trainable"], ref["bn_init"], ref["feature_init"], ref["normalize"]))
    return needs


def claim_order(runs: Sequence, claims, seconds: Callable[[Any], float], have: Callable[[Any], bool],
                series: dict[str, Sequence[str]]) -> list[Planned]:
    """Every run of ``runs`` for which ``have`` is false (not finished in the store, not trained
    elsewhere), in the order that answers the most claims per device-second: greedily, the claim
    whose missing runs answer the most claims (it and the others they complete) per second of
    their ``seconds`` comes next, its runs cheapest first. Runs ``have`` names count as there.

    A claim is answered for one seed when every run it reads (:func:`claim_needs`) is there at
    that seed: seed 0 of every claim comes before any claim's seed 1, since a claim answered at
    all is worth more than one answered again. Claims whose runs ``runs`` lacks (networks outside
    the profile) are passed over. Runs that answer no claim come last, cheapest first."""
    index = {run_key(c): c for c in runs}
    present = {k for k, c in index.items() if have(c)}
    position = {k: i for i, k in enumerate(index)}
    seeds = sorted({k[-1] for k in index})
    units: list[tuple[str, int, frozenset]] = []
    for _, claim in claims.iterrows():
        needs = claim_needs(claim, series)
        for seed in seeds:
            keys = frozenset(n + (seed,) for n in needs)
            if needs and keys <= index.keys():
                units.append((claim["id"] if seed == 0 else f"{claim['id']} (seed {seed})", seed, keys))
    price = {k: max(float(seconds(c)), 1e-9) for k, c in index.items() if k not in present}
    order: list[Planned] = []
    for seed in seeds:
        open_units = [u for u in units if u[1] == seed and not u[2] <= present]
        while open_units:
            def rank(unit):
                missing = unit[2] - present
                cost = sum(price[k] for k in missing)
                gained = sum(1 for u in open_units if u[2] <= present | missing)
                return (-gained / cost, cost, min(position[k] for k in missing))

            best = min(open_units, key=rank)
            missing = sorted(best[2] - present, key=lambda k: (price[k], position[k]))
            present |= set(missing)
            answered = [u for u in open_units if u[2] <= present]
            order += [Planned(index[k], price[k]) for k in missing]
            order[-1].answers = [u[0] for u in answered]
            open_units = [u for u in open_units if not u[2] <= present]
    rest = sorted((k for k in index if k not in present), key=lambda k: (price[k], position[k]))
    return order + [Planned(index[k], price[k]) for k in rest]


def parse_elsewhere(text: str) -> Callable[[Any], bool]:
    """``resnet-14,resnet-110:bn`` -> whether a run is trained elsewhere: every run of a network
    named alone; ``NETWORK:MODE``, that network's runs in that mode with the default inits and
    normalisation (the ones a CPU trains), every seed."""
    from .architectures import lookup
    from .config import ModelConfig

    default = ModelConfig()
    rules = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        network, _, mode = item.partition(":")
        rules.append((lookup(network).name, mode.replace("+", ",") or None))

    def elsewhere(config) -> bool:
        m = config.model
        for network, mode in rules:
            if m.model != network:
                continue
            if mode is None or (_identity(config.train.trainable, network) == _identity(mode, network)
                                and (m.bn_init, m.feature_init, m.normalize)
                                == (default.bn_init, default.feature_init, default.normalize)):
                return True
        return False

    return elsewhere


def price_runs(estimate: dict[str, Any] | None, epochs_done: dict[str, int], fingerprint: str) -> Callable[[Any], float]:
    """Device-seconds of the epochs a run lacks: d's estimate of its network and kind (per run
    in packs where the estimate packed), else the family's cost (multiply-adds, twice for runs
    that train convolutions), which orders runs alike up to one constant."""
    from .architectures import cost
    from .estimate import kind_of
    from .packs import trains_convolutions
    from .results import address

    def seconds(config) -> float:
        left = config.train.epochs - epochs_done.get(address(config, fingerprint), 0)
        if estimate is not None and config.model.model in estimate["networks"]:
            per_epoch = estimate["networks"][config.model.model]["seconds_per_epoch"][kind_of(config)]
        else:
            per_epoch = cost(config.model.model) * (2 if trains_convolutions(config) else 1)
        return max(0, left) * per_epoch

    return seconds


def train_in_order(planned: Sequence[Planned], runs_dir: str | Path, dataset, *, pack: int, deadline: float,
                   resumable_only: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """e: the planned runs in packs (:func:`bnlib.packs.plan_packs`, packs in the order of their
    first run), one pack after another, each with the time left as its time limit, and Figure
    7's clamping curve where a finished run needs one (:func:`bnlib.sweep.train_with_curves`).
    With ``resumable_only`` (what the job keeps comes back through a size-limited archive) a
    pack that keeps full checkpoints, and that its price says would not finish, is passed over:
    stopped, its checkpoints (7 MB a ResNet-110 run) would not come back."""
    from . import compact
    from .packs import plan_packs
    from .sweep import report_line, train_with_curves
    from .train import _device_memory, resolve_device

    price = {id(p.config): p.seconds for p in planned}
    by_config = {id(p.config): p for p in planned}
    memory = _device_memory(resolve_device(planned[0].config.train.device)) if planned and pack > 1 else None
    packs = plan_packs([p.config for p in planned], max_runs=pack, memory_budget=memory)
    counts = {"trained": 0, "stopped": 0, "not_started": 0, "passed_over": 0, "runs": []}
    for unit in packs:
        left = deadline - time.time()
        needed = sum(price.get(id(c), 0.0) for c in unit)
        if left <= 0:
            counts["not_started"] += len(unit)
            continue
        if resumable_only and needed > left and not all(compact.applies(c) for c in unit):
            log(f"train: passed over {unit[0].model.model} x{len(unit)} ({unit[0].train.trainable}, ...): "
                f"about {needed:.0f} s to finish, {left:.0f} s left, and its full checkpoints would not come back")
            counts["passed_over"] += len(unit)
            continue
        started = time.time()
        log(f"train: {unit[0].model.model} x{len(unit)}: "
            + ", ".join(f"{c.train.trainable}/{c.model.bn_init}/{c.model.feature_init}"
                        f"{'' if c.model.normalize else '/no-norm'}/seed {c.train.seed}" for c in unit))
        for config, run in zip(unit, train_with_curves(unit, runs_dir, dataset, time_limit=left)):
            out = {**run.to_dict(), "seconds": time.time() - started}
            log("train: " + report_line(config, out))
            counts["stopped" if run.status == "stopped" else "trained"] += 1
            counts["runs"].append({"model": config.model.model, "trainable": config.train.trainable,
                                   "bn_init": config.model.bn_init, "feature_init": config.model.feature_init,
                                   "normalize": config.model.normalize, "seed": config.train.seed,
                                   "answers": by_config[id(config)].answers, **out})
    return counts


# --------------------------------------------------------------------------- f. the archive

def snapshot(folders: Iterable[str | Path]) -> dict[str, str]:
    """Every file under ``folders`` (locks aside) -> the sha256 of its content."""
    out = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and not path.name.endswith(".lock"):
                out[str(path.resolve())] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def changed_files(before: dict[str, str], folders: Iterable[str | Path]) -> list[Path]:
    """Files under ``folders`` that are new since ``before`` (a :func:`snapshot`) or changed."""
    after = snapshot(folders)
    return [Path(p) for p, digest in after.items() if before.get(p) != digest]


_RUN_FOLDER = re.compile(r".+_[0-9a-f]{12}")  # bnlib.results.RUN_FOLDER: a run's folder


def _tar_bytes(size: int) -> int:
    return 512 + -(-size // 512) * 512  # a header block, then the content in whole blocks


def pack_archive(files: Sequence[str | Path], root: str | Path, out: str | Path, limit: int = ARCHIVE_LIMIT,
                 manifest_name: str = "gpu-job-manifest.json") -> dict[str, Any]:
    """f: ``files`` (under ``root``, stored by their path from it) in one ``.tar.gz`` at ``out``
    of at most ``limit`` bytes, with a manifest (what is in it, what was left out and why).

    Filled in this order, each part whole or not at all: files outside run folders (the job's
    records and measurements); then each run folder's changed files but ``model.pt``, smallest
    run first, a stopped run's checkpoint together with its metrics and log (the checkpoint is
    its state: its metrics without it would describe epochs nobody can resume); then final
    weights (``model.pt``), smallest first. Sizes are counted as the uncompressed tar's, which
    gzip does not exceed but by a few bytes per 64 KiB, and the written archive is checked."""
    root = Path(root).resolve()
    groups: dict[tuple, list[Path]] = {}
    for f in map(lambda p: Path(p).resolve(), files):
        folder = f.parent
        if not _RUN_FOLDER.fullmatch(folder.name):
            groups[(0, str(f))] = [f]
        elif f.name == "model.pt":
            groups[(2, str(f))] = [f]
        else:
            groups.setdefault((1, str(folder)), []).append(f)
    units = sorted(groups.items(), key=lambda kv: (kv[0][0], sum(p.stat().st_size for p in kv[1]), kv[0][1]))
    # room for the manifest (as long as it can be: every file listed as left out), the tar's
    # end blocks and gzip's framing (a few bytes per block even of incompressible data)
    longest = [{"path": str(p.relative_to(root)), "bytes": p.stat().st_size, "why": "larger than the archive's limit"}
               for _, paths in units for p in paths]
    margin = _tar_bytes(len(json.dumps({"files": [], "left_out": longest, "limit_bytes": limit, "date": _now()},
                                       indent=1)) + 64) + 1024 + limit // 1000 + 64
    used, included, left_out = 0, [], []
    for _, paths in units:
        size = sum(_tar_bytes(p.stat().st_size) for p in paths)
        if used + size + margin <= limit:
            used += size
            included += paths
        else:
            why = "larger than the archive's limit" if size + margin > limit else "no room left in the archive"
            left_out += [{"path": str(p.relative_to(root)), "bytes": p.stat().st_size, "why": why} for p in paths]
    manifest = {"limit_bytes": limit, "files": [{"path": str(p.relative_to(root)), "bytes": p.stat().st_size}
                                                for p in included],
                "left_out": left_out, "date": _now()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        body = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(manifest_name)
        info.size, info.mtime = len(body), int(time.time())
        tar.addfile(info, io.BytesIO(body))
        for p in included:
            tar.add(p, arcname=str(p.relative_to(root)), recursive=False)
    manifest["archive_bytes"] = out.stat().st_size
    if manifest["archive_bytes"] > limit:  # the margin makes this unreachable; the limit is a hard one
        raise RuntimeError(f"{out} is {manifest['archive_bytes']} bytes, over the limit of {limit}")
    return manifest


# --------------------------------------------------------------------------- the job

def _next_job(records: Path) -> int:
    numbers = [int(m.group(1)) for p in records.glob("job-*") if (m := re.match(r"job-(\d+)", p.name))]
    return max(numbers, default=0) + 1


def build_parser() -> argparse.ArgumentParser:
    from .cli import parse_duration

    p = argparse.ArgumentParser(prog="scripts/gpu-job.py", description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=parse_duration, required=True, help="the job's time (9m, 1h30m): every step ends "
                   "within it, training takes what the others leave")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: cuda)")
    p.add_argument("--profile", default="paper", help="the profile whose runs e trains and d estimates (default: paper)")
    p.add_argument("--data", help="the profile's data source (the paper store's runs read the JPEG copy)")
    p.add_argument("--runs-dir", help="the results store (default: the profile's)")
    p.add_argument("--records", default=str(ROOT / "data" / "runs" / "paper" / "jobs"),
                   help="where the job's environment, report and log go, as job-N-* (default: data/runs/paper/jobs)")
    p.add_argument("--benchmarks", default=str(ROOT / "data" / "benchmarks"),
                   help="where c's and d's measurements go (default: data/benchmarks)")
    p.add_argument("--archive", help="f: write the new and changed files here (.tar.gz), within --archive-limit; "
                   "then e passes over packs whose full checkpoints could not come back (default: no archive)")
    p.add_argument("--archive-limit", type=int, default=ARCHIVE_LIMIT, help="bytes (default: 16 MiB)")
    p.add_argument("--steps", default=STEPS, help="which of the steps a-f to do (default: abcdef)")
    p.add_argument("--train-time", type=parse_duration, help="e trains for at most this long (default: what the "
                   "budget leaves)")
    p.add_argument("--pack", type=int, default=24, help="runs per pack in d and e (default: 24)")
    p.add_argument("--compile", default="none", choices=["none", "default", "reduce-overhead"],
                   help="torch.compile for e's runs (default: none: compiling ResNet-110 takes minutes)")
    p.add_argument("--elsewhere", default=CPU_MEANWHILE, help="runs e leaves to another machine: NETWORK or "
                   f"NETWORK:MODE, comma separated (default: {CPU_MEANWHILE})")
    p.add_argument("--check-compile", default="none,reduce-overhead", help="b's compile modes (default: both)")
    p.add_argument("--check-model", default="resnet-8", help="b's tiny network (default: resnet-8)")
    p.add_argument("--bench", default=BENCH_PLAN, help=f"c's measurements (default: {BENCH_PLAN})")
    p.add_argument("--bench-steps", type=int, default=10)
    p.add_argument("--bench-rounds", type=int, default=2)
    p.add_argument("--estimate-networks", default=ESTIMATE_NETWORKS,
                   help="d measures these, extrapolates the others (empty: every network)")
    p.add_argument("--estimate-steps", type=int, default=3)
    p.add_argument("--wheels", help="a folder of carried wheels for modules missing here (pip --no-index)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; exit status 0 (done), 1 (a step failed: the report says which), 3 (the
    budget stopped runs: the next job resumes them)."""
    started = time.time()
    args = build_parser().parse_args(argv)
    deadline = started + args.budget
    records = Path(args.records)
    records.mkdir(parents=True, exist_ok=True)
    job = _next_job(records)
    stem = records / f"job-{job}"
    log_path = Path(f"{stem}.log")

    def log(text: str) -> None:
        line = f"{_now()} {text}"
        print(line, flush=True)
        with open(log_path, "a") as f:
            f.write(line + "\n")

    report: dict[str, Any] = {"job": job, "argv": list(argv if argv is not None else sys.argv[1:]),
                              "budget_s": args.budget, "started": _now(), "steps": {}}

    def step(letter: str, name: str, work: Callable[[], Any]) -> Any:
        if letter not in args.steps:
            return None
        began = time.time()
        log(f"step {letter} ({name}): {deadline - began:.0f} s of the budget left")
        try:
            result = work()
            report["steps"][name] = {"status": "ok", "seconds": round(time.time() - began, 1), "result": result}
        except Exception as error:  # recorded; the next steps still run (the report says what failed)
            log(f"step {letter} ({name}) failed: {type(error).__name__}: {error}")
            report["steps"][name] = {"status": "failed", "seconds": round(time.time() - began, 1),
                                     "error": f"{type(error).__name__}: {error}"}
            result = None
        Path(f"{stem}-report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
        return result

    # the store, records and measurements as they were: f packs what the job changed
    benchmarks = Path(args.benchmarks)
    from .experiments import PROFILES

    runs_dir = Path(args.runs_dir or (PROFILES[args.profile].runs_dir if args.profile in PROFILES else "runs"))
    watched = [d for d in (runs_dir, records, benchmarks) if d.is_dir()]
    before = snapshot(watched) if "f" in args.steps else {}

    env = step("a", "environment", lambda: environment(args.wheels))
    if env is None and "a" in args.steps:
        return 1
    if env and env.get("nvidia_smi"):
        Path(f"{stem}-nvidia-smi.txt").write_text(env["nvidia_smi"])

    def check():
        with tempfile.TemporaryDirectory() as scratch:
            return check_gpu_path(args.device, scratch, [m for m in args.check_compile.split(",") if m],
                                  model=args.check_model)

    checked = step("b", "check", check)
    date = datetime.date.today().isoformat()
    bench_rows = step("c", "bench", lambda: measure_packs(
        args.device, parse_bench_plan(args.bench), steps=args.bench_steps, rounds=args.bench_rounds,
        out=benchmarks / f"gpu-job-{job}-packs-{date}.jsonl", log=log)) or []

    def estimates():
        from .estimate import append, estimate, table

        networks = [n for n in args.estimate_networks.split(",") if n.strip()]
        done = {}
        for pack in dict.fromkeys((1, args.pack)):
            result = estimate(args.profile, pack=pack, device=args.device, steps=args.estimate_steps,
                              networks=networks, log=log)
            append(result, benchmarks / "estimates.jsonl")
            log("estimate:\n" + table(result))
            done[pack] = result
        return done

    estimated = step("d", "estimate", estimates) or {}
    if bench_rows or estimated:
        report["targets"] = targets(bench_rows, {int(k): v for k, v in estimated.items()})

    def train():
        if "b" in args.steps and not trusted(checked, args.compile):
            raise RuntimeError(f"the check (b) did not pass for compile={args.compile}, or a frozen tensor changed: "
                               "nothing is trained into the store")
        until = deadline - ARCHIVE_RESERVE_S if "f" in args.steps else deadline
        if args.train_time is not None:
            until = min(until, time.time() + args.train_time)
        return train_step(args, runs_dir, estimated.get(args.pack) or estimated.get(1), until, log)

    trained = step("e", "train", train)

    def archive():
        Path(f"{stem}-report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
        folders = [d.resolve() for d in (runs_dir, records, benchmarks) if d.is_dir()]
        # paths in the archive are the repository's, so that it unpacks at the repository's root
        root = ROOT if all(d.is_relative_to(ROOT) for d in folders) else Path(os.path.commonpath(folders))
        manifest = pack_archive(changed_files(before, folders), root, args.archive, limit=args.archive_limit)
        log(f"archive: {args.archive}: {len(manifest['files'])} files, {manifest['archive_bytes']} bytes; "
            f"left out {len(manifest['left_out'])}"
            + "".join(f"\n  {m['path']} ({m['bytes']} bytes): {m['why']}" for m in manifest["left_out"]))
        return {k: v for k, v in manifest.items() if k != "files"} | {"files": len(manifest["files"])}

    if args.archive:
        step("f", "archive", archive)
    report["finished"] = _now()
    report["total_s"] = round(time.time() - started, 1)
    Path(f"{stem}-report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    if any(s["status"] == "failed" for s in report["steps"].values()):
        return 1
    return 3 if trained and (trained["stopped"] or trained["not_started"] or trained["passed_over"]) else 0


def train_step(args, runs_dir: Path, estimate: dict[str, Any] | None, deadline: float,
               log: Callable[[str], None]) -> dict[str, Any]:
    """e, from the job's arguments: the profile's runs the store lacks, priced and ordered."""
    from . import data as data_lib, results
    from .claims import load_claims
    from .experiments import PROFILES, Experiments
    from .sweep import is_finished

    plan = Experiments(PROFILES[args.profile], data=args.data, device=args.device)
    configs = [c.replace(compile=args.compile) for c in plan.all_runs()]
    dataset = data_lib.load(plan.data_source)
    runs_dir.mkdir(parents=True, exist_ok=True)
    finished = dict(zip(map(run_key, configs), is_finished(configs, runs_dir)))
    epochs_done = {s["run"]: s["epochs"] for s in results.check(runs_dir) if s["state"] in ("stopped", "interrupted")}
    elsewhere = parse_elsewhere(args.elsewhere)
    planned = claim_order(configs, load_claims(), price_runs(estimate, epochs_done, dataset.fingerprint),
                          lambda c: finished[run_key(c)] or elsewhere(c),
                          {"deep": plan.networks("deep"), "wide": plan.networks("wide")})
    log(f"train: {len(planned)} runs to train, first: "
        + "; ".join(f"{p.config.model.model} {p.config.train.trainable} {p.config.model.bn_init} seed "
                    f"{p.config.train.seed} ({p.seconds:.0f} s{', answers ' + ', '.join(p.answers) if p.answers else ''})"
                    for p in planned[:8]))
    counts = train_in_order(planned, runs_dir, dataset, pack=args.pack, deadline=deadline,
                            resumable_only=bool(args.archive), log=log)
    counts["order"] = [{"model": p.config.model.model, "trainable": p.config.train.trainable,
                        "bn_init": p.config.model.bn_init, "feature_init": p.config.model.feature_init,
                        "normalize": p.config.model.normalize, "seed": p.config.train.seed,
                        "seconds": round(p.seconds, 1), "answers": p.answers} for p in planned[:40]]
    return counts
