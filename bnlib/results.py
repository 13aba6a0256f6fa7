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
import fcntl
import functools
import hashlib
import io
import json
import datetime
import logging
import math
import numbers
import os
import re
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

# Warnings about the store (a skipped run, a file set aside) are one line each on stderr (the
# logging module's last-resort handler); a chapter shows them as notes (bnlib.book).
log = logging.getLogger("bnlib")

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


RUN_FOLDER = re.compile(r".+_[0-9a-f]{12}")  # what address() names; other folders are not runs


def address(config: RunConfig, data_fingerprint: str) -> str:
    """Where a run lives in a store: ``<model>_<hash>``. The one function that computes a run's
    identity: fields that say where or how visibly a run executes (``hashed=False``) are left
    out, the data set is its fingerprint and the mode the set of tensors it trains
    (``bn,shortcut,output`` and ``output,shortcut,bn`` are one run)."""
    values = config.flat()
    payload = {f.name: values[f.name] for f in all_fields() if f.metadata.get("hashed", True)
               and (f.name in ADDRESS_FIELDS or values[f.name] != f.default)}
    payload["data"] = data_fingerprint
    payload["trainable"] = _mode_identity(config.train.trainable, config.model.model)
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return f"{config.model.model}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@functools.lru_cache(maxsize=None)
def _mode_identity(trainable: str, model: str) -> str:
    """:func:`bnlib.freezing.mode_identity`, asked once per (mode, network): reading a store
    checks every run's address, and each answer builds a network on the meta device."""
    from .freezing import mode_identity

    return mode_identity(trainable, model)


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
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk keeps the previous file and leaves no half-written one
        raise


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


class Unreadable(Exception):
    """A file of the store that cannot be read, with its path and why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def set_aside(path: Path, reason: str) -> Path:
    """Keep a damaged or foreign file under a new name (``checkpoint.pt.damaged-<time>``), out
    of the run's way, and say so in one line."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, kept)
    log.warning("%s %s: kept as %s", path, reason, kept.name)
    return kept


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file; anything else (missing, cut short, not an object) is
    :class:`Unreadable`, naming the file."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Unreadable(path, f"cannot be read as JSON ({error})") from None
    if not isinstance(payload, dict):
        raise Unreadable(path, f"holds a JSON {type(payload).__name__}, not an object")
    return payload


# --------------------------------------------------------------------------- readers

def read_config(folder: str | Path) -> dict[str, Any]:
    """A run's ``config.json``; fields added to the config after the run was stored read as
    their defaults (which is what the run computed: defaults never change meaning)."""
    return {**{f.name: f.default for f in all_fields()}, **read_json(Path(folder) / CONFIG)}


class Foreign(Unreadable):
    """A run folder whose ``config.json`` is another run's (a renamed or copied folder): what it
    holds answers for that run, not for the one its name is the address of."""


def read_run_config(folder: str | Path) -> dict[str, Any]:
    """A run's ``config.json`` (:func:`read_config`), checked to be this folder's: its fields
    and data fingerprint must hash to the folder's name (:func:`address`), so a renamed folder
    or a config copied from another run never relabels a result. Raises :class:`Foreign`
    (or :class:`Unreadable` for a file that cannot be read)."""
    folder = Path(folder)
    record = read_config(folder)
    fingerprint = record.get("data_fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise Foreign(folder / CONFIG, "records no data fingerprint, so it cannot prove which run it is")
    try:
        expected = address(RunConfig.from_flat(**{f.name: record[f.name] for f in all_fields()}), fingerprint)
    except Exception as error:  # an unknown network or mode, a value of the wrong type
        raise Foreign(folder / CONFIG, f"holds no valid config ({_one_line(error)})") from None
    if expected != folder.name:
        raise Foreign(folder / CONFIG, f"is the config of run {expected}, not of {folder.name} "
                                       "(a renamed folder, or a config copied from another run?)")
    return record


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def read_result(folder: str | Path, metrics: pd.DataFrame | None = None) -> dict[str, Any]:
    """A finished run's ``result.json``, checked to hold values a run can have: status
    complete or diverged, accuracies in [0, 100], losses >= 0 (finite unless the run diverged),
    and as many epochs as its ``metrics.csv`` (``metrics``, when read already) has rows.
    Anything else is :class:`Unreadable`, naming the file and the value."""
    path = Path(folder) / RESULT
    result = read_json(path)
    status = result.get("status")
    if status not in ("complete", "diverged") or "test_accuracy" not in result:
        raise Unreadable(path, "has no status complete or diverged and no test_accuracy")
    for key in ("test_accuracy", "train_accuracy"):
        value = result.get(key, 0.0) if key != "test_accuracy" else result[key]
        if not _number(value) or not 0 <= value <= 100:
            raise Unreadable(path, f"holds {key} {value!r}, not a percentage in [0, 100]")
    for key in ("test_loss", "train_loss"):
        value = result.get(key, 0.0)
        if not _number(value) or value < 0 or (status == "complete" and not math.isfinite(value)):
            raise Unreadable(path, f"holds {key} {value!r}, not a loss a {status} run can have")
    epochs = result.get("epochs_completed")
    if epochs is not None:
        if not _number(epochs) or epochs != int(epochs) or epochs < 1:
            raise Unreadable(path, f"holds epochs_completed {epochs!r}, not a whole number >= 1")
        rows = len(load_metrics_of(folder) if metrics is None else metrics)
        if rows and rows != epochs:
            raise Unreadable(path, f"says {int(epochs)} epochs were completed but {METRICS} has {rows}")
    return result


def _being_written(folder: Path) -> bool:
    """Whether another process holds the run's lock (:func:`bnlib.train._locked`): its files
    are being written. Only read: the lock is tried shared, without waiting, and let go."""
    try:
        handle = open(folder / LOCK, "rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def run_dirs(runs_dir: str | Path) -> list[Path]:
    root = Path(runs_dir)
    return sorted(p.parent for p in root.glob(f"*/{CONFIG}")) if root.is_dir() else []


def _row(folder: Path) -> dict[str, Any]:
    """One run's row of :func:`load`; raises :class:`Unreadable` naming the damaged file."""
    row: dict[str, Any] = read_run_config(folder)
    if (folder / RESULT).is_file():
        result = read_result(folder)
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
    return row


def state(runs_dir: str | Path, files: tuple[str, ...] = (CONFIG, RESULT, METRICS)) -> tuple:
    """What is read of a store, as stat() sees it: each run folder with the identity, size and
    time of its ``files`` (by default those :func:`load` reads). Equal states give equal tables,
    so a process reads an unchanged store once (a chapter asks for it many times)."""
    def of(path: Path) -> tuple | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    return tuple((str(folder), *(of(folder / name) for name in files)) for folder in run_dirs(runs_dir))


@functools.lru_cache(maxsize=16)
def _read_store(store_state: tuple) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The table of a store in ``store_state`` (:func:`state`) and its warnings."""
    rows, warnings = [], []
    for folder, *_ in store_state:
        try:
            rows.append(_row(Path(folder)))
        except Unreadable as error:
            warnings.append(f"skipped run {Path(folder).name}: {error}")
    # an empty store still has the columns, so that filters on them work
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*RunConfig().flat(), *EMPTY_COLUMNS])
    return table, tuple(warnings)


def load(runs_dir: str | Path) -> pd.DataFrame:
    """Every run under ``runs_dir``, one row each: its config fields, ``status``
    (complete, diverged, or incomplete for a run still training, interrupted or stopped),
    the final (or latest) epoch's metrics, and ``run_dir``. A run with a file that cannot be
    read is left out with a warning naming the file and why, at every call: one bad file never
    hides the rest (``python -m bnlib check`` lists them all). Read again only when the
    store changed (:func:`state`); the table is the caller's own copy."""
    table, warnings = _read_store(state(runs_dir))
    for warning in warnings:
        log.warning("%s", warning)
    return table.copy()


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


def check(runs_dir: str | Path) -> list[dict[str, Any]]:
    """The state of every run folder under ``runs_dir``, one dict each (``run``, ``state``,
    ``epochs``, ``detail``): ``complete`` or ``diverged`` (finished), ``stopped`` (by a time
    limit, resumable), ``interrupted`` (resumable from its checkpoint, or from scratch),
    ``unreadable`` (a file that cannot be read: which, and why)."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise Unreadable(root, "is not a folder")
    states = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and RUN_FOLDER.fullmatch(p.name)):
        state: dict[str, Any] = {"run": folder.name, "state": "", "epochs": 0, "detail": ""}
        if _being_written(folder):  # its files change under us: whatever we read proves nothing
            state.update(state="training", detail="being trained by another process (it holds the run's lock)")
            states.append(state)
            continue
        try:
            if not (folder / CONFIG).is_file():
                raise Unreadable(folder / CONFIG, "is missing")
            read_run_config(folder)
            epochs = len(load_metrics_of(folder))
            if (folder / RESULT).is_file():
                result = _row(folder)
                state.update(state=result["status"], epochs=int(result.get("epochs_completed", epochs)),
                             detail=f"test accuracy {result['test_accuracy']:.2f}%")
            elif (folder / CHECKPOINT).is_file():
                epochs = _checkpoint_epoch(folder / CHECKPOINT)
                stopped = _last_event(folder).startswith("stop")
                state.update(state="stopped" if stopped else "interrupted", epochs=epochs,
                             detail=f"resumes from its checkpoint after epoch {epochs}")
            else:
                state.update(state="interrupted", epochs=epochs, detail="no checkpoint: starts again from scratch")
        except Unreadable as error:
            state.update(state="unreadable", detail=str(error))
        states.append(state)
    return states


def _checkpoint_epoch(path: Path) -> int:
    """The epoch a checkpoint resumes after; :class:`Unreadable` for one that cannot be loaded."""
    try:
        return int(load_torch(path)["epoch"])
    except Exception as error:  # a checkpoint torch cannot load: any of its errors
        raise Unreadable(path, f"cannot be loaded ({_one_line(error)})") from None


def _last_event(folder: Path) -> str:
    """The last line of a run's ``events.log`` without its time stamp ("stop epoch=3 ...")."""
    try:
        lines = (folder / EVENTS).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    return lines[-1].partition(" ")[2] if lines else ""


def load_metrics_of(folder: str | Path) -> pd.DataFrame:
    """A run's ``metrics.csv`` (empty when there is none yet): one row per finished epoch,
    numbered 1, 2, ...; any other content is :class:`Unreadable`."""
    path = Path(folder) / METRICS
    if not path.is_file():
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    try:
        metrics = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise Unreadable(path, f"is not a CSV table ({str(error).splitlines()[0]})") from None
    missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
    if missing:
        raise Unreadable(path, f"lacks the column(s) {', '.join(missing)}")
    numeric = metrics[list(METRIC_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    # a diverged run's losses read as nan, a number; any other text ('bar') is not
    losses = ["train_loss", "test_loss"]
    text = metrics[losses].map(lambda value: str(value).strip().lower())
    if numeric.drop(columns=losses).isna().any().any() or (numeric[losses].isna() & (text != "nan")).any().any():
        raise Unreadable(path, "holds values that are not numbers")
    if list(numeric["epoch"]) != list(range(1, len(numeric) + 1)):
        raise Unreadable(path, "does not number its epochs 1, 2, 3, ...")
    problem = _metrics_out_of_bounds(numeric, losses)
    if problem:
        raise Unreadable(path, problem)
    return metrics.assign(**{c: numeric[c] for c in METRIC_COLUMNS}).astype({"epoch": int})


def _metrics_out_of_bounds(numeric: pd.DataFrame, losses: list[str]) -> str | None:
    """Why a metrics table holds values no run can have (None when it holds none): accuracies
    outside [0, 100], negative losses or a non-finite one before the last epoch (a run stops at
    the epoch it diverges), a learning rate that is not positive, negative times or speeds."""
    for column in ("train_accuracy", "test_accuracy"):
        bad = ~numeric[column].between(0, 100)
        if bad.any():
            return f"holds {column} {float(numeric[column][bad].iloc[0]):g} at epoch {int(numeric['epoch'][bad].iloc[0])}, " \
                   "not a percentage in [0, 100]"
    for column in losses:
        values = numeric[column]
        finite = values.map(math.isfinite)
        bad = (finite & (values < 0)) | (~finite & (numeric["epoch"] < len(numeric)))
        if bad.any():
            return f"holds {column} {float(values[bad].iloc[0]):g} at epoch {int(numeric['epoch'][bad].iloc[0])}, " \
                   "not a loss a run can have there"
    for column, bad in (("lr", ~(numeric["lr"] > 0) | ~numeric["lr"].map(math.isfinite)),
                        ("seconds", ~numeric["seconds"].between(0, math.inf)),
                        ("images_per_s", ~numeric["images_per_s"].between(0, math.inf))):
        if bad.any():
            return f"holds {column} {float(numeric[column][bad].iloc[0]):g} at epoch {int(numeric['epoch'][bad].iloc[0])}"
    return None


def load_metrics(runs_dir: str | Path) -> pd.DataFrame:
    """Every epoch of every run: the metrics rows joined with their run's config."""
    frames = []
    for folder in run_dirs(runs_dir):
        try:
            metrics = load_metrics_of(folder)
            record = read_run_config(folder)
        except Unreadable as error:
            log.warning("skipped the epochs of run %s: %s", folder.name, error)
            continue
        if len(metrics):
            scalars = {k: v for k, v in record.items() if not isinstance(v, (list, dict))}
            frames.append(metrics.assign(**scalars, run_dir=str(folder)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_batchnorm(folder: str | Path) -> pd.DataFrame:
    """A finished run's gamma and beta, one row per channel of each BatchNorm layer."""
    return pd.read_csv(Path(folder) / BATCHNORM)
