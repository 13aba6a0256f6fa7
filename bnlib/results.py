"""The results store: one folder per run, addressed by a hash of its config; plain files.

A run folder ``<runs_dir>/<model>_<hash>/`` holds

* ``config.json``   every config field, plus the data set's source and fingerprint;
* ``metrics.csv``   one row per finished epoch: lr, train/test loss and accuracy, seconds, images/s;
* ``checkpoint.pt`` the last finished epoch (model, optimizer, metrics), written atomically,
  removed once the run is complete;
* ``batchnorm.csv`` the final gamma and beta of every channel of every BatchNorm layer
  (and its running mean and variance);
* ``model.pt``      the final state dict, random features included;
* ``result.json``   the completion marker, written last: status, final accuracy, hardware.

* ``clamping.csv``  Figure 7's re-evaluations after clamping gamma (runs that Figure 7 studies);
* ``events.log``    a line each time the run starts, resumes or finishes.

A run's address (:func:`address`, the only place identity is computed) is ``<model>_<hash>``,
the hash taken over every field that changes what is computed, with the data set named by the
fingerprint of its pixels (not its path) and the training mode by the tensors it trains.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import torch

from .config import RunConfig, all_fields

CONFIG = "config.json"
METRICS = "metrics.csv"
CHECKPOINT = "checkpoint.pt"
BATCHNORM = "batchnorm.csv"
MODEL = "model.pt"
RESULT = "result.json"
CLAMPING = "clamping.csv"
EVENTS = "events.log"
LOCK = ".lock"

EMPTY_COLUMNS = ("status", "test_accuracy", "epochs_completed", "data_source", "data_fingerprint", "run_dir")
METRIC_COLUMNS = (
    "epoch", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds", "images_per_s",
)


# The fields every address has hashed, whatever their value, since the store began. A field
# added to the config later enters the hash only when its value differs from its default, so a
# new option never moves a stored run (as in the authors' framework, open_lth).
ADDRESS_FIELDS = frozenset({
    "model", "bn_init", "feature_init", "normalize", "data", "augment", "trainable", "epochs", "seed",
    "batch_size", "lr", "momentum", "weight_decay", "lr_drops", "precision",
})


def address(config: RunConfig, data_fingerprint: str) -> str:
    """Where a run lives in a store: ``<model>_<hash>``. The one function that computes a run's
    identity: fields that say where or how visibly a run executes (``hashed=False``) are left
    out, the data set is its fingerprint and the mode the set of tensors it trains
    (``bn,shortcut,output`` and ``output,shortcut,bn`` are one run)."""
    from .freezing import mode_identity

    values = config.flat()
    payload = {f.name: values[f.name] for f in all_fields() if f.metadata.get("hashed", True)
               and (f.name in ADDRESS_FIELDS or values[f.name] != f.default)}
    payload["data"] = data_fingerprint
    payload["trainable"] = mode_identity(config.train.trainable, config.model.model)
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return f"{config.model.model}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def run_dir(runs_dir: str | Path, config: RunConfig, data_fingerprint: str) -> Path:
    return Path(runs_dir) / address(config, data_fingerprint)


def data_name(data: str) -> str:
    """How a stored config names its data: ``cifar10``, ``synthetic`` or a file or folder name,
    never a path of the machine that trained it (the fingerprint says which pixels it read)."""
    return data if data in ("cifar10", "synthetic") else Path(str(data).rstrip("/")).name


def config_record(config: RunConfig, data: dict[str, Any]) -> dict[str, Any]:
    """The contents of a run's ``config.json``: every config field and the data set's
    description (source, fingerprint, sizes, normalisation constants)."""
    return {**config.flat(), "data": data_name(config.data.data), **data}


# --------------------------------------------------------------------------- atomic writes

def _atomic_write(path: Path, write) -> None:
    """Write to a temporary sibling, flush it to disk, then rename: a reader (or a run
    resumed after ``kill -9``) sees the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    _atomic_write(path, lambda f: f.write((json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()))


def write_csv(path: Path, rows: Iterable[dict[str, Any]], columns: Iterable[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(path, lambda f: f.write(buffer.getvalue().encode()))


def save_torch(path: Path, payload: Any) -> None:
    _atomic_write(path, lambda f: torch.save(payload, f))


def load_torch(path: Path, map_location: str | torch.device = "cpu") -> Any:
    return torch.load(path, map_location=map_location, weights_only=True)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# --------------------------------------------------------------------------- readers

def read_config(folder: str | Path) -> dict[str, Any]:
    """A run's ``config.json``; fields added to the config after the run was stored read as
    their defaults (which is what the run computed: defaults never change meaning)."""
    return {**{f.name: f.default for f in all_fields()}, **read_json(Path(folder) / CONFIG)}


def run_dirs(runs_dir: str | Path) -> list[Path]:
    root = Path(runs_dir)
    return sorted(p.parent for p in root.glob(f"*/{CONFIG}")) if root.is_dir() else []


def load(runs_dir: str | Path) -> pd.DataFrame:
    """Every run under ``runs_dir``, one row each: its config fields, ``status``
    (complete, diverged, or incomplete for a run still training or interrupted),
    the final (or latest) epoch's metrics, and ``run_dir``."""
    rows = []
    for folder in run_dirs(runs_dir):
        row: dict[str, Any] = read_config(folder)
        if (folder / RESULT).is_file():
            result = read_json(folder / RESULT)
            # result.json records the device the run resolved to (cuda, cpu); the config's own
            # "device" field (e.g. "auto") keeps its column, so the table reads back the config.
            result["device_used"] = result.pop("device", None)
            row.update(result)
        else:
            row["status"] = "incomplete"
            metrics = load_metrics_of(folder)
            if len(metrics):
                row.update(metrics.iloc[-1].to_dict())
        row["run_dir"] = str(folder)
        rows.append(row)
    # an empty store still has the columns, so that filters on them work
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*RunConfig().flat(), *EMPTY_COLUMNS])


def find(runs_dir: str | Path, configs: Iterable[RunConfig], fingerprint: str | None = None,
         ) -> tuple[pd.DataFrame, list[RunConfig]]:
    """Split ``configs`` into their stored runs (finished or diverged; one row each, in the
    order of ``configs``) and the missing ones, by address (:func:`address`). The data set is
    ``fingerprint`` when given; otherwise each data set the store holds runs of, so that a
    store is read without reading (or downloading) the data it was trained on."""
    stored = load(runs_dir)
    if stored.empty:
        return stored, list(configs)
    stored = stored[stored["status"].isin(["complete", "diverged"])]
    by_address = {Path(d).name: i for i, d in zip(stored.index, stored["run_dir"])}
    fingerprints = [fingerprint] if fingerprint else list(dict.fromkeys(stored["data_fingerprint"].dropna()))
    rows, missing = [], []
    for config in configs:
        found = next((by_address[a] for a in (address(config, f) for f in fingerprints) if a in by_address), None)
        if found is None:
            missing.append(config)
        else:
            rows.append(stored.loc[found])
    return (pd.DataFrame(rows).reset_index(drop=True) if rows else stored.iloc[:0]), missing


def load_metrics_of(folder: str | Path) -> pd.DataFrame:
    path = Path(folder) / METRICS
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=list(METRIC_COLUMNS))


def load_metrics(runs_dir: str | Path) -> pd.DataFrame:
    """Every epoch of every run: the metrics rows joined with their run's config."""
    frames = []
    for folder in run_dirs(runs_dir):
        metrics = load_metrics_of(folder)
        if len(metrics):
            scalars = {k: v for k, v in read_config(folder).items() if not isinstance(v, (list, dict))}
            frames.append(metrics.assign(**scalars, run_dir=str(folder)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_batchnorm(folder: str | Path) -> pd.DataFrame:
    """A finished run's gamma and beta, one row per channel of each BatchNorm layer."""
    return pd.read_csv(Path(folder) / BATCHNORM)
