"""The trainer: Appendix B's SGD schedule, one epoch checkpoint at a time, resumable.

``train(config, runs_dir)`` returns the stored result when the run already finished, resumes
from the last checkpoint when it was interrupted, and otherwise trains from scratch. All
randomness comes from generators seeded by (seed, epoch), so a resumed run replays exactly
what an uninterrupted one would have done.
"""

from __future__ import annotations

import datetime
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from . import data as data_lib
from . import results
from .config import ConfigError, RunConfig
from .freezing import apply_trainable, canonical, parse_trainable
from .init import check_names
from .models import build, parse_name


@dataclass
class RunResult:
    run_dir: str
    status: str  # complete | diverged
    test_accuracy: float  # percent, after the last epoch
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
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available")
    return device


def validate(config: RunConfig) -> None:
    """Every check on user input that needs no data: raises ConfigError before anything is written."""
    parse_name(config.model.model)
    check_names(config.model.bn_init, config.model.feature_init)
    parse_trainable(config.train.trainable)
    lr_drop_fractions(config.train.lr_drops)
    t = config.train
    for name, value, low in (("epochs", t.epochs, 1), ("batch_size", t.batch_size, 1), ("seed", t.seed, 0)):
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")
    for name, value in (("lr", t.lr), ("momentum", t.momentum), ("weight_decay", t.weight_decay)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    data_lib.check_source(config.data.data)
    resolve_device(t.device)


def locate(config: RunConfig, dataset: data_lib.Dataset, runs_dir: str | Path) -> Path:
    """The folder of this config's run in ``runs_dir`` (whether or not it exists yet)."""
    identity = canonical(config.train.trainable, build(config.model.model, device="meta"))
    return results.run_dir(runs_dir, config, dataset.fingerprint, identity)


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
) -> RunResult:
    """Train one run, or return it from the store, or resume it. See the module docstring."""
    validate(config)
    dataset = dataset if dataset is not None else data_lib.load(config.data.data)
    folder = locate(config, dataset, runs_dir)
    if (folder / results.RESULT).is_file():
        stored = results.read_json(folder / results.RESULT)
        return RunResult(str(folder), stored["status"], stored["test_accuracy"], stored["epochs_completed"],
                         cached=True, resumed_from_epoch=0)

    device = resolve_device(config.train.device)
    folder.mkdir(parents=True, exist_ok=True)
    results.write_json(folder / results.CONFIG, {**config.flat(), **dataset.describe()})

    m = config.model
    model = build(m.model, bn_init=m.bn_init, feature_init=m.feature_init, normalize=m.normalize,
                  seed=config.train.seed, device=device)
    params = apply_trainable(model, config.train.trainable)
    t = config.train
    optimizer = (
        torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay) if params else None
    )
    metrics: list[dict[str, float]] = []
    start = 0
    if (folder / results.CHECKPOINT).is_file():
        state = results.load_torch(folder / results.CHECKPOINT, map_location=device)
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        metrics, start = state["metrics"], state["epoch"]

    ds = dataset.to(device)
    status = "complete"
    for epoch in range(start, t.epochs):
        row = _run_epoch(model, optimizer, ds, config, epoch, progress)
        metrics.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if not math.isfinite(row["train_loss"]):
            status = "diverged"  # recorded, not raised: a sweep goes on past a diverged run
            break
        results.write_csv(folder / results.METRICS, metrics, results.METRIC_COLUMNS)
        results.save_torch(folder / results.CHECKPOINT, {
            "epoch": epoch + 1,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "metrics": metrics,
        })

    _finish(folder, model, metrics, status, device, ds)
    return RunResult(str(folder), status, metrics[-1]["test_accuracy"], len(metrics),
                     cached=False, resumed_from_epoch=start)


def _run_epoch(model: nn.Module, optimizer: torch.optim.Optimizer | None, ds: data_lib.Dataset,
               config: RunConfig, epoch: int, progress: bool) -> dict[str, float]:
    t = config.train
    lr = learning_rate(config, epoch)
    if optimizer is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    model.train()
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=ds.train_x.device)
    correct = torch.zeros((), device=ds.train_x.device, dtype=torch.long)
    batches = data_lib.train_batches(ds, t.batch_size, t.seed, epoch, config.data.augment)
    if progress:
        from tqdm import tqdm

        steps = math.ceil(ds.train_x.shape[0] / t.batch_size)
        batches = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{t.epochs}", file=sys.stderr, leave=False)
    for x, y in batches:
        # With nothing trainable ("none"), the forward pass still updates BatchNorm's running
        # statistics, exactly as in the paper's None baseline; there is just no step.
        with torch.set_grad_enabled(optimizer is not None):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
    train_seconds = time.perf_counter() - started
    n = ds.train_x.shape[0]
    test_loss, test_accuracy = evaluate(model, ds)
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": loss_sum.item() / n,
        "train_accuracy": 100.0 * correct.item() / n,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "seconds": time.perf_counter() - started,
        "images_per_s": n / train_seconds,
    }


@torch.no_grad()
def evaluate(model: nn.Module, ds: data_lib.Dataset) -> tuple[float, float]:
    """Test loss and accuracy (percent) with BatchNorm in inference mode."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for x, y in data_lib.test_batches(ds):
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    n = ds.test_x.shape[0]
    return loss_sum / n, 100.0 * correct / n


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


def _finish(folder: Path, model: nn.Module, metrics: list[dict[str, float]], status: str,
            device: torch.device, ds: data_lib.Dataset) -> None:
    results.write_csv(folder / results.METRICS, metrics, results.METRIC_COLUMNS)
    results.write_csv(folder / results.BATCHNORM, batchnorm_table(model),
                      ("layer", "channel", "gamma", "beta", "running_mean", "running_var"))
    results.save_torch(folder / results.MODEL, {k: v.cpu() for k, v in model.state_dict().items()})
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
