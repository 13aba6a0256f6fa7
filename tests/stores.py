"""Tiny results stores written as plain files, for testing what reads a store without training.

:func:`write_store` writes run folders exactly as :mod:`bnlib.train` does (``config.json``,
``metrics.csv``, ``batchnorm.csv``, ``result.json``) and, as :func:`bnlib.analysis.clamp_curve`
does, ``clamping.csv``; it writes no weights (``model.pt``). Every value is synthetic: drawn
from a seeded generator around simple formulas, so tests compute what they expect from the
files and never depend on what a network learns. ``test_analysis`` checks that these folders
have the names, columns and keys of a real run's.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from bnlib import RunConfig, analysis, data, results
from bnlib.models import build
from bnlib.train import learning_rate

CLAMPING = results.CLAMPING  # Figure 7's curve, written by bnlib.analysis.clamp_curve
BATCHNORM_COLUMNS = ("layer", "channel", "gamma", "beta", "running_mean", "running_var")
HARDWARE = "Synthetic CPU (2 threads)"  # one label for every run: figures and claims print it

# Synthetic final accuracies: a base per mode, a gain per step of depth, seeded noise.
BASE_ACCURACY = {"all": 62.0, "none": 11.0, "bn": 40.0, "bn,shortcut,output": 44.0, "shortcut,output": 30.0}
DEPTH_GAIN = 6.0


def batchnorm_layers(model: str) -> list[tuple[str, int]]:
    """(name, channels) of every BatchNorm layer of a registry network, as the trainer names them."""
    network = build(model, device="meta")
    return [(name, m.num_features) for name, m in network.named_modules() if isinstance(m, nn.BatchNorm2d)]


def write_run(runs_dir: str | Path, *, model: str, trainable: str, seed: int, accuracy: float,
              rng: np.random.Generator, epochs: int = 1, description: dict | None = None,
              clamping: bool = True, status: str = "complete", **fields) -> Path:
    """One finished run's folder, at the address :mod:`bnlib.results` gives its config
    (``fields``: more config fields, e.g. ``bn_init``)."""
    description = description if description is not None else data.load("synthetic").describe()
    config = RunConfig.from_flat(model=model, trainable=trainable, seed=seed, epochs=epochs, data="synthetic",
                                 **fields)
    folder = results.run_dir(runs_dir, config, description["data_fingerprint"])
    folder.mkdir(parents=True, exist_ok=True)
    results.write_json(folder / results.CONFIG, results.config_record(config, description))

    metrics = []
    for epoch in range(1, epochs + 1):
        progress = epoch / epochs
        metrics.append({
            "epoch": epoch, "lr": learning_rate(config, epoch - 1),
            "train_loss": float(2.3 - 1.2 * progress + rng.normal(0, 0.02)),
            "train_accuracy": float(min(100.0, accuracy * progress + 3 + rng.normal(0, 0.5))),
            "test_loss": float(2.3 - accuracy / 60 * progress + rng.normal(0, 0.02)),
            "test_accuracy": float(accuracy if epoch == epochs else accuracy * progress),
            "seconds": float(rng.uniform(5, 20)), "images_per_s": float(rng.uniform(400, 900)),
        })
    results.write_csv(folder / results.METRICS, metrics, results.METRIC_COLUMNS)

    gamma_spread = 0.4 if trainable == "all" else 0.25  # γ near 0 where only BatchNorm learns, as in Figure 6
    rows = []
    for layer, channels in batchnorm_layers(model):
        gamma = rng.normal(0.3, gamma_spread, channels)
        small = rng.random(channels) < 0.1
        gamma[small] = rng.normal(0, 0.005, int(small.sum()))
        beta = rng.normal(0, 0.1, channels)
        mean, var = rng.normal(0, 0.5, channels), rng.uniform(0.1, 2.0, channels)
        rows += [{"layer": layer, "channel": c, "gamma": float(gamma[c]), "beta": float(beta[c]),
                  "running_mean": float(mean[c]), "running_var": float(var[c])} for c in range(channels)]
    results.write_csv(folder / results.BATCHNORM, rows, BATCHNORM_COLUMNS)
    if clamping:
        write_clamping(folder, np.array([r["gamma"] for r in rows]), accuracy, rng)

    last = metrics[-1]
    results.write_json(folder / results.RESULT, {
        "status": status, "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
        "train_accuracy": last["train_accuracy"], "train_loss": last["train_loss"], "epochs_completed": epochs,
        "train_seconds": sum(r["seconds"] for r in metrics),
        "images_per_s": sum(r["images_per_s"] for r in metrics) / epochs,
        "device": "cpu", "hardware": HARDWARE, "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "finished_at": "2020-01-01T00:00:00+00:00", **description,
    })
    return folder


def write_clamping(folder: Path, gamma: np.ndarray, accuracy: float, rng: np.random.Generator) -> None:
    """Figure 7's curve of a run: the fraction clamped is that of its batchnorm.csv; accuracy
    falls with it, and further when the remaining γ are binarised."""
    rows = []
    for keep, threshold in analysis.clamp_grid():
        fraction = float((np.abs(gamma) < threshold).mean())
        drop = 80 * fraction ** 2 + (rng.uniform(5, 15) if keep != "value" else 0.0)
        rows.append({"keep": keep, "threshold": threshold, "fraction_clamped": fraction,
                     "test_accuracy": max(10.0, accuracy - drop) if (keep, threshold) != ("value", 0.0) else accuracy,
                     "test_loss": float(2.3 - accuracy / 60 + fraction)})
    results.write_csv(folder / CLAMPING, rows, analysis.CLAMP_COLUMNS)


def write_store(runs_dir: str | Path, models: Iterable[str] = ("resnet-8", "resnet-14"),
                modes: Iterable[str] = ("all", "bn", "bn,shortcut,output"), seeds: Iterable[int] = (0, 1),
                epochs: int = 1, seed: int = 0) -> Path:
    """Every (model, mode, seed) as a finished run; deeper networks score higher (Figure 2)."""
    rng = np.random.default_rng(seed)
    description = data.load("synthetic").describe()  # what the smoke profile reads
    for depth, model in enumerate(models):
        for mode in modes:
            for s in seeds:
                accuracy = BASE_ACCURACY[mode] + DEPTH_GAIN * depth + rng.normal(0, 2.0)
                write_run(runs_dir, model=model, trainable=mode, seed=s, accuracy=round(float(accuracy), 2),
                          rng=rng, epochs=epochs, description=description)
    return Path(runs_dir)
