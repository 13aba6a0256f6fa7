"""The trainer: Appendix B's SGD schedule, one epoch checkpoint at a time, resumable.

``train(config, runs_dir)`` returns the stored result when the run already finished, resumes
from the last checkpoint when it was interrupted, and otherwise trains from scratch. All
randomness comes from generators seeded by (seed, epoch), so a resumed run replays exactly
what an uninterrupted one would have done.

With ``time_limit`` (seconds) a run stops at the last epoch boundary that fits: an epoch is not
started when the epochs measured so far say it would end past the limit. The stopped run keeps
its checkpoint, writes no ``result.json`` and reports status ``stopped``; called again, it
resumes. So 160 epochs can span Slurm allocations, preemptible instances or shared GPU slots.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from . import compact
from . import data as data_lib
from . import results
from .architectures import lookup
from .config import ConfigError, RunConfig
from .freezing import apply_trainable, parse_trainable
from .init import check_names
from .models import build, fuse, split_state
from .packs import Pack


@dataclass
class RunResult:
    run_dir: str
    status: str  # complete | diverged | stopped (by the time limit: resumable, not finished)
    test_accuracy: float | None  # percent, after the last epoch (None: stopped before any epoch)
    epochs_completed: int
    cached: bool  # True when the stored result was returned without training
    resumed_from_epoch: int  # 0 when trained from scratch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lr_drop_fractions(spec: str) -> list[float]:
    try:
        fractions = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"lr_drops {spec!r} must be comma-separated fractions such as 0.5,0.75") from None
    if any(not 0 < f < 1 for f in fractions):
        raise ConfigError(f"lr_drops {spec!r}: each fraction must lie strictly between 0 and 1")
    return fractions


def learning_rate(config: RunConfig, epoch: int) -> float:
    """lr for 0-based ``epoch``: divided by 10 once epoch >= f * epochs for each drop fraction f
    (for 160 epochs: 0.1 until epoch 80, 0.01 until 120, then 0.001)."""
    t = config.train
    drops = sum(epoch >= f * t.epochs for f in lr_drop_fractions(t.lr_drops))
    return t.lr / 10**drops


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):  # meta computes nothing; mps, xpu and others are untested here
        raise ConfigError(f"device {name!r} is not supported: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available")
    return device


SEED_RANGE = (0, 2**32 - 1)  # what torch's generators take
LR_MAX = 10.0  # far above any rate that trains these networks; larger ones overflow the loss


def validate(config: RunConfig, runs_dir: str | Path | None = None) -> None:
    """Every check on user input that needs no data: raises ConfigError before anything is
    written (and before any memory is allocated)."""
    network = lookup(config.model.model)
    check_names(config.model.bn_init, config.model.feature_init)
    parse_trainable(config.train.trainable)
    lr_drop_fractions(config.train.lr_drops)
    t = config.train
    for name, value, low in (("epochs", t.epochs, 1), ("batch_size", t.batch_size, 1), ("seed", t.seed, 0)):
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")
    if t.seed > SEED_RANGE[1]:
        raise ConfigError(f"seed must lie in {SEED_RANGE[0]}..{SEED_RANGE[1]}, got {t.seed}")
    # momentum 1 or more never forgets a gradient; larger rates and decays overflow the loss
    for name, value, fits, bounds in (("lr", t.lr, 0 < t.lr <= LR_MAX, f"(0, {LR_MAX:g}]"),
                                      ("momentum", t.momentum, 0 <= t.momentum < 1, "[0, 1)"),
                                      ("weight_decay", t.weight_decay, 0 <= t.weight_decay < 1, "[0, 1)")):
        if not fits:  # NaN fits nothing
            raise ConfigError(f"{name} must lie in {bounds}, got {value!r}")
    if t.precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be fp32 or bf16, got {t.precision!r}")
    if t.compile not in ("none", "default", "reduce-overhead"):
        raise ConfigError(f"compile must be none, default or reduce-overhead, got {t.compile!r}")
    data_lib.check_source(config.data.data)
    device = resolve_device(t.device)
    check_memory(network, t.batch_size, device)
    if runs_dir is not None:
        check_writable(Path(runs_dir))


def check_memory(network, batch_size: int, device: torch.device) -> None:
    """Refuse a network whose training cannot fit the device, from its family's estimate
    (before anything is allocated: wrn-14-100000 would ask for terabytes)."""
    from .architectures import family

    estimate = getattr(family(network), "memory", None)
    if estimate is None:
        return
    needed = estimate(network, batch_size)
    available = _device_memory(device)
    if available is not None and needed > available:
        raise ConfigError(f"{network.name} needs about {needed / 2**30:,.1f} GiB to train with batch size "
                          f"{batch_size}; the {device.type} has {available / 2**30:,.1f} GiB free")


def _device_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_writable(runs_dir: Path) -> None:
    """A results store must be a folder this process can write: created if missing, and tried
    with a file (permissions alone do not tell: root passes them on a read-only file system)."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise ConfigError(f"runs directory {str(runs_dir)!r} is a file, not a folder")
    missing = [p for p in (runs_dir, *runs_dir.absolute().parents) if not p.exists()]
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=runs_dir):
            pass
    except OSError as error:
        raise ConfigError(f"runs directory {str(runs_dir)!r} cannot be written ({error.strerror})") from None
    finally:
        for folder in missing:  # validation writes nothing: the folders are made again when a run starts
            with contextlib.suppress(OSError):
                folder.rmdir()


def check_data(config: RunConfig, dataset: data_lib.Dataset) -> None:
    """The data set fits the network: the output layer is built for its number of classes, and
    both splits hold images of one shape."""
    if len(dataset.classes) < 2:
        raise ConfigError(f"data {config.data.data!r} has {len(dataset.classes)} class(es): a classifier needs two or more")
    if dataset.train_x.shape[1:] != dataset.test_x.shape[1:] or dataset.train_x.shape[1] != 3:
        raise ConfigError(f"data {config.data.data!r}: train images {tuple(dataset.train_x.shape[1:])} and test "
                          f"images {tuple(dataset.test_x.shape[1:])} must both be RGB of one size")


def locate(config: RunConfig, dataset: data_lib.Dataset, runs_dir: str | Path) -> Path:
    """The folder of this config's run in ``runs_dir`` (whether or not it exists yet)."""
    return results.run_dir(runs_dir, config, dataset.fingerprint)


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def train(
    config: RunConfig,
    runs_dir: str | Path,
    *,
    dataset: data_lib.Dataset | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    time_limit: float | None = None,
    refuse_unfit: bool = False,
) -> RunResult:
    """Train one run, or return it from the store, or resume it; with ``time_limit`` (seconds),
    stop at the last epoch boundary that fits. See the module docstring. ``refuse_unfit``: a
    ``time_limit`` shorter than one epoch of the run, as measured, is :class:`ConfigError`
    (:func:`check_fits`) instead of a stop that makes no progress."""
    return train_replicates([config], runs_dir, dataset=dataset, progress=progress, on_epoch=on_epoch,
                            time_limit=time_limit, refuse_unfit=refuse_unfit)[0]


def train_replicates(configs: Sequence[RunConfig], runs_dir: str | Path, **options: Any) -> list[RunResult]:
    """Train replicates of one experiment (configs that differ only in ``seed``) together, as
    one fused network: :func:`train_pack` (and its options) for a pack of seeds."""
    if len({c.replace(seed=0) for c in configs}) != 1 or len({c.train.seed for c in configs}) != len(configs):
        raise ConfigError("replicates trained together must differ in their seed and in nothing else")
    return train_pack(configs, runs_dir, **options)


def train_pack(
    configs: Sequence[RunConfig],
    runs_dir: str | Path,
    *,
    dataset: data_lib.Dataset | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    time_limit: float | None = None,
    refuse_unfit: bool = False,
) -> list[RunResult]:
    """Train a pack: runs of one network that differ only in ``seed``, ``trainable``,
    ``bn_init`` and ``feature_init``, together as one fused network (:func:`bnlib.models.fuse`,
    :mod:`bnlib.packs`) so that small networks fill a GPU.

    Each run keeps its own initialisation, data order, augmentation, BatchNorm statistics and
    trainable parts (a masked SGD leaves every run's frozen tensors bit-identical), and is
    stored as its own run, exactly as if trained alone: finished ones are returned from the
    store, interrupted ones resume (together when they stopped at the same epoch), and a packed
    run can later be resumed alone and vice versa. ``time_limit`` (seconds from this call) is
    shared by all of them: see the module docstring. A pack of one is :func:`train`.
    """
    from .packs import pack_key

    deadline = None if time_limit is None else _clock() + time_limit
    if time_limit is not None and not time_limit >= 0:
        raise ConfigError(f"time limit must be a number of seconds >= 0, got {time_limit!r}")
    if not configs:
        return []
    for config in configs:
        validate(config, runs_dir)
    if len({pack_key(c) for c in configs}) != 1:
        raise ConfigError("runs trained together as a pack must differ only in seed, trainable, bn_init and "
                          "feature_init")
    dataset = dataset if dataset is not None else data_lib.load(configs[0].data.data)
    check_data(configs[0], dataset)
    folders = [locate(c, dataset, runs_dir) for c in configs]
    if len(set(folders)) != len(folders):
        raise ConfigError("a pack holds each run once: two of its configs are the same run")
    done = {i: stored for i, stored in enumerate(map(stored_result, folders)) if stored is not None}
    with _locked([f for i, f in enumerate(folders) if i not in done]):
        waiting: dict[int, list[int]] = {}  # checkpoint epoch -> runs that stopped there
        states: dict[int, dict | None] = {}
        for i, folder in enumerate(folders):
            if i in done:
                continue
            # finished by another process while we waited, or a finished run to repair
            stored = stored_result(folder, repair=(configs[i], dataset))
            if stored is not None:
                done[i] = stored
                continue
            states[i] = _trusted_checkpoint(folder, configs[i], len(dataset.classes))
            if refuse_unfit and time_limit is not None:
                check_fits(folder.name, states[i]["metrics"] if states[i] else [], time_limit)
            waiting.setdefault(states[i]["epoch"] if states[i] else 0, []).append(i)
        for group in waiting.values():
            trained = _train_group([configs[i] for i in group], [folders[i] for i in group], dataset, progress,
                                   on_epoch, deadline, [states[i] for i in group])
            done.update(zip(group, trained))
    return [done[i] for i in range(len(configs))]


def stored_result(folder: Path, repair: tuple[RunConfig, data_lib.Dataset] | None = None) -> RunResult | None:
    """The result of a finished run, or None when the run is not finished here.

    Only a folder that proves it is this run is returned: its ``config.json`` hashes to its
    address and its ``result.json`` and ``metrics.csv`` hold values a run can have
    (:func:`bnlib.results.read_run_config`, :func:`bnlib.results.read_result`).

    With ``repair`` (the run's config and data, under the run's lock), a finished run with a
    damaged file is mended from what is intact: an unreadable ``config.json`` is written again
    from the config; an unreadable ``result.json`` or ``metrics.csv`` is set aside and the run is
    trained again, which gives it the same result (training is deterministic). A folder whose
    ``config.json`` is another run's (renamed, or copied over) holds that run's results: they are
    all set aside and the run is trained again."""
    if not (folder / results.RESULT).is_file():
        return None
    try:
        metrics = results.load_metrics_of(folder)
        stored = results.read_result(folder, metrics)
        try:
            results.read_run_config(folder)
        except results.Foreign:
            raise
        except results.Unreadable:
            if repair is None:
                return None  # repaired under the run's lock
            config, dataset = repair
            results.log.warning("%s was unreadable: written again from the run's config", folder / results.CONFIG)
            results.write_json(folder / results.CONFIG, results.config_record(config, dataset.describe()))
        return RunResult(str(folder), stored["status"], stored["test_accuracy"],
                         int(stored.get("epochs_completed", len(metrics))), cached=True, resumed_from_epoch=0)
    except results.Unreadable as error:
        if repair is None:
            return None  # repaired under the run's lock
        foreign = isinstance(error, results.Foreign)
        # another run's folder: every file it holds answers for that run; else only the two
        names = (results.CONFIG, results.RESULT, results.METRICS, results.BATCHNORM, results.MODEL,
                 results.CLAMPING) if foreign else (results.RESULT, results.METRICS)
        for name in names:
            if (folder / name).is_file():
                results.set_aside(folder / name, f"belongs to a finished run that cannot be trusted ({error}); "
                                                 "the run is trained again")
        return None


def _trusted_checkpoint(folder: Path, config: RunConfig, num_classes: int) -> dict | None:
    """The run's checkpoint, when it can be read and is this run's, with its model state in
    full (a compact one, :mod:`bnlib.compact`, is rebuilt from the config and must match its
    frozen tensors' fingerprint); otherwise it is set aside and the run starts from scratch (its
    only earlier state). Checkpoints written before they recorded their run's address are
    trusted."""
    path = folder / results.CHECKPOINT
    if not path.is_file():
        return None
    try:
        state = results.load_torch(path)
        if not isinstance(state, dict) or not {"epoch", "model", "metrics"} <= set(state):
            raise ValueError("not a bnlib checkpoint")
    except Exception as error:  # whatever torch raises for a cut, empty or random file
        results.set_aside(path, f"cannot be read ({type(error).__name__}); the run starts from scratch")
        return None
    if state.get("address", folder.name) != folder.name:
        results.set_aside(path, f"belongs to run {state['address']}; the run starts from scratch")
        return None
    try:
        state["model"] = compact.expand(state["model"], compact.rebuild(config, num_classes), config.train.trainable)
    except compact.FrozenMismatch as error:
        results.set_aside(path, f"{error}; the run starts from scratch")
        return None
    return state


@contextlib.contextmanager
def _locked(folders: list[Path]):
    """Hold an exclusive lock on each run folder: two processes (a sweep's retry and a worker
    a killed driver left behind, say) never train one run at once. The OS drops the lock when
    its process dies, so a killed run never blocks its own resumption."""
    with contextlib.ExitStack() as stack:
        for folder in sorted(folders):  # one order for every process: no deadlock
            folder.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(open(folder / results.LOCK, "w"))
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _event(folder: Path, text: str) -> None:
    """Append one line to the run's ``events.log``: when it started, resumed and finished."""
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with open(folder / results.EVENTS, "a") as f:
        f.write(f"{stamp} {text} pid={os.getpid()} host={platform.node()}\n")


def _clock() -> float:
    """Seconds on a clock that never jumps, for time limits (tests replace it)."""
    return time.monotonic()


def _epoch_estimate(measured: list[float], stored: list[dict[str, float]]) -> float | None:
    """Seconds the next epoch will take: the median of the last five epochs this process
    measured, its first one left out once there are others (it pays for compilation and
    cuDNN's algorithm search); before any, the median of the stored epochs' seconds (measured
    where the run trained before); None when nothing was measured yet."""
    recent = (measured[1:] if len(measured) > 1 else measured)[-5:] or [row["seconds"] for row in stored][-5:]
    return sorted(recent)[len(recent) // 2] if recent else None


def check_fits(run: str, stored: list[dict[str, float]], time_limit: float) -> None:
    """Refuse a time limit shorter than one epoch of a run, as its stored epochs measured it
    (:func:`_epoch_estimate`): every call would stop the run before its next epoch and exit with
    status 3, so a job that resubmits itself on 3 would never end. A run with no epoch yet is not
    refused: nothing measured says its first epoch does not fit, and that epoch is kept."""
    estimate = _epoch_estimate([], stored)
    if estimate is not None and estimate > time_limit:
        raise ConfigError(f"the time limit of {time_limit:.0f} s is shorter than one epoch of run {run} "
                          f"({estimate:.0f} s measured): it could never train another; give a longer --time-limit")


def _train_group(configs: list[RunConfig], folders: list[Path], dataset: data_lib.Dataset, progress: bool,
                 on_epoch: Callable[[dict[str, float]], None] | None,
                 deadline: float | None, states: list[dict | None]) -> list[RunResult]:
    t = configs[0].train
    r = len(configs)
    device = resolve_device(t.device)
    for config, folder in zip(configs, folders):
        folder.mkdir(parents=True, exist_ok=True)
        results.write_json(folder / results.CONFIG, results.config_record(config, dataset.describe()))

    singles = [build(c.model.model, bn_init=c.model.bn_init, feature_init=c.model.feature_init,
                     normalize=c.model.normalize, num_classes=len(dataset.classes), seed=c.train.seed)
               for c in configs]
    for single, state in zip(singles, states):
        if state is not None:
            single.load_state_dict(state["model"])
    model = (singles[0] if r == 1 else fuse(singles)).to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if r == 1:  # a run alone: torch's SGD over exactly its trainable parameters
        pack = None
        params = apply_trainable(model, t.trainable)
        optimizer = (
            torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay) if params else None
        )
        if optimizer is not None and states[0] is not None:
            optimizer.load_state_dict(states[0]["optimizer"])
    else:  # each run trains its own parts: masked where they differ (bnlib.packs)
        pack = Pack.of(model, [c.train.trainable for c in configs])
        optimizer = pack.optimizer(model, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
        if optimizer is not None and states[0] is not None:
            pack.load_optimizer(optimizer, [s["optimizer"] for s in states], model)
    metrics: list[list[dict[str, float]]] = [s["metrics"] if s else [] for s in states]
    start = states[0]["epoch"] if states[0] else 0
    step_model = torch.compile(model, mode=None if t.compile == "default" else t.compile) \
        if t.compile != "none" else model

    for folder in folders:
        _event(folder, f"start epoch={start} runs={r} device={device}")
    ds = dataset.to(device)
    status = ["complete"] * r
    alive = list(range(r))
    measured: list[float] = []  # seconds of each epoch this process trained, checkpoints included
    for epoch in range(start, t.epochs):
        if deadline is not None:
            estimate = _epoch_estimate(measured, metrics[alive[0]])
            if _clock() + (estimate or 0.0) > deadline:
                # Not started: it would end past the time limit. Every finished epoch's
                # checkpoint is already written, so the next call resumes from this epoch.
                for i in alive:
                    status[i] = "stopped"
                    _event(folders[i], f"stop epoch={epoch} time limit")
                alive = []
                break
        began = _clock()
        rows = _run_epoch(step_model, optimizer, ds, configs, epoch, progress)
        model_states = split_state(model.state_dict(), r)
        optimizer_states = _optimizer_states(optimizer, pack, r)
        for i in list(alive):
            metrics[i].append(rows[i])
            if on_epoch is not None:
                on_epoch(rows[i])
            if not math.isfinite(rows[i]["train_loss"]):
                status[i] = "diverged"  # recorded, not raised: a sweep goes on past a diverged run
                alive.remove(i)
                _finish(folders[i], configs[i], singles[i], model_states[i], metrics[i], "diverged", device, ds)
                continue
            results.write_csv(folders[i] / results.METRICS, metrics[i], results.METRIC_COLUMNS)
            results.save_torch(folders[i] / results.CHECKPOINT, {
                "address": folders[i].name, "epoch": epoch + 1,
                "model": compact.stored(model_states[i], singles[i], configs[i]),
                "optimizer": optimizer_states[i], "metrics": metrics[i],
            })
        measured.append(_clock() - began)
        if not alive:
            break
    if alive:
        final = split_state(model.state_dict(), r)
        for i in alive:
            _finish(folders[i], configs[i], singles[i], final[i], metrics[i], "complete", device, ds)
    return [RunResult(str(folders[i]), status[i], metrics[i][-1]["test_accuracy"] if metrics[i] else None,
                      len(metrics[i]), cached=False, resumed_from_epoch=start) for i in range(r)]


def _optimizer_states(optimizer: torch.optim.Optimizer | None, pack, runs: int) -> list[dict | None]:
    """Each run's optimizer state, as a run trained alone stores it (bnlib.packs)."""
    if pack is None:
        return [optimizer.state_dict() if optimizer is not None else None]
    if optimizer is None:
        return [None] * runs
    return pack.split_optimizer(optimizer.state_dict())


def _inputs(batches: list[tuple[torch.Tensor, torch.Tensor]], channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch per replicate -> the fused network's input (B, R*3, H, W) and labels (B, R)."""
    x = torch.cat([b[0] for b in batches], dim=1) if len(batches) > 1 else batches[0][0]
    y = torch.stack([b[1] for b in batches], dim=1)
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


def _losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-replicate cross-entropy (B, R) and the logits (B, R, classes)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        logits = model(x)
    logits = logits.float().view(y.shape[0], y.shape[1], -1)
    per_image = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
    return per_image, logits


def _run_epoch(model: nn.Module, optimizer: torch.optim.Optimizer | None, ds: data_lib.Dataset,
               configs: list[RunConfig], epoch: int, progress: bool) -> list[dict[str, float]]:
    t = configs[0].train
    r = len(configs)
    lr = learning_rate(configs[0], epoch)
    if optimizer is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    model.train()
    started = time.perf_counter()
    loss_sum = torch.zeros(r, device=ds.train_x.device)
    correct = torch.zeros(r, device=ds.train_x.device, dtype=torch.long)
    batches: Iterable = zip(*[data_lib.train_batches(ds, t.batch_size, c.train.seed, epoch, c.data.augment)
                              for c in configs])
    if progress:
        from tqdm import tqdm

        steps = math.ceil(ds.train_x.shape[0] / t.batch_size)
        batches = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{t.epochs}", file=sys.stderr, leave=False)
    for per_replicate in batches:
        x, y = _inputs(per_replicate, t.channels_last)
        # With nothing trainable ("none"), the forward pass still updates BatchNorm's running
        # statistics, exactly as in the paper's None baseline; there is just no step.
        with torch.set_grad_enabled(optimizer is not None):
            per_image, logits = _losses(model, x, y, t.precision)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            # Replicates share no parameter, so the sum of their batch means gives each
            # replicate exactly the gradient it would get alone.
            (per_image.sum() / y.shape[0]).backward()
            optimizer.step()
        loss_sum += per_image.detach().sum(0)
        correct += (logits.argmax(-1) == y).sum(0)
    losses, corrects = loss_sum.tolist(), correct.tolist()  # waits for queued GPU work: honest timing
    train_seconds = time.perf_counter() - started
    n = ds.train_x.shape[0]
    tests = _evaluate(model, ds, r, t.channels_last, t.precision)
    seconds = time.perf_counter() - started
    return [{
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": losses[i] / n,
        "train_accuracy": 100.0 * corrects[i] / n,
        "test_loss": tests[i][0],
        "test_accuracy": tests[i][1],
        "seconds": seconds,
        "images_per_s": n / train_seconds,  # per replicate: fused replicates share these seconds
    } for i in range(r)]


@torch.no_grad()
def _evaluate(model: nn.Module, ds: data_lib.Dataset, replicates: int = 1, channels_last: bool = False,
              precision: str = "fp32") -> list[tuple[float, float]]:
    model.eval()
    loss_sum = torch.zeros(replicates, device=ds.test_x.device)
    correct = torch.zeros(replicates, device=ds.test_x.device, dtype=torch.long)
    for x, y in data_lib.test_batches(ds):
        x, y = _inputs([(x, y)] * replicates, channels_last)
        per_image, logits = _losses(model, x, y, precision)
        loss_sum += per_image.sum(0)
        correct += (logits.argmax(-1) == y).sum(0)
    n = ds.test_x.shape[0]
    return [(loss_sum[i].item() / n, 100.0 * correct[i].item() / n) for i in range(replicates)]


def evaluate(model: nn.Module, ds: data_lib.Dataset, channels_last: bool = False) -> tuple[float, float]:
    """Test loss and accuracy (percent) of one network, BatchNorm in inference mode."""
    return _evaluate(model, ds, channels_last=channels_last)[0]


def batchnorm_table(model: nn.Module) -> list[dict[str, Any]]:
    """gamma, beta and running statistics of every BatchNorm channel, one row each."""
    rows = []
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            columns = [module.weight, module.bias, module.running_mean, module.running_var]
            for channel, (g, b, mean, var) in enumerate(zip(*(c.detach().cpu().tolist() for c in columns))):
                rows.append({"layer": name, "channel": channel, "gamma": g, "beta": b,
                             "running_mean": mean, "running_var": var})
    return rows


def _finish(folder: Path, config: RunConfig, model: nn.Module, state: dict[str, torch.Tensor],
            metrics: list[dict[str, float]], status: str, device: torch.device, ds: data_lib.Dataset) -> None:
    """Write a finished run's files, ``result.json`` (the completion marker) last; its weights
    compact when its convolutions are frozen (:mod:`bnlib.compact`)."""
    model.load_state_dict(state)  # this replicate's final tensors, into its own single network
    results.write_csv(folder / results.METRICS, metrics, results.METRIC_COLUMNS)
    results.write_csv(folder / results.BATCHNORM, batchnorm_table(model),
                      ("layer", "channel", "gamma", "beta", "running_mean", "running_var"))
    results.save_torch(folder / results.MODEL, compact.stored(model.state_dict(), model, config))
    last = metrics[-1]
    results.write_json(folder / results.RESULT, {
        "status": status,
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "train_accuracy": last["train_accuracy"],
        "train_loss": last["train_loss"],
        "epochs_completed": len(metrics),
        "train_seconds": sum(row["seconds"] for row in metrics),
        "images_per_s": sum(row["images_per_s"] for row in metrics) / len(metrics),
        "device": str(device),
        "hardware": hardware(device),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **ds.describe(),
    })
    (folder / results.CHECKPOINT).unlink(missing_ok=True)
    _event(folder, f"finish status={status} epochs={len(metrics)}")
