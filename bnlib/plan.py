"""A chapter's plan: its experiments (:mod:`bnlib.experiments`) and the store that holds them.

:class:`Plan` finds a figure's runs in the store (by address, :func:`bnlib.results.find`),
trains the missing ones when a chapter asks for it (``train_missing``), and otherwise says
which are missing and the command that makes them.
"""

from __future__ import annotations

import functools
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import data as data_lib
from . import results
from .architectures import lookup
from .config import RunConfig
from .errors import ConfigError
from .experiments import PROFILES, ROOT, Experiments
from .freezing import parse_trainable

__all__ = ["PROFILES", "Plan"]

PACK_ON_GPU = 8  # runs per pack when a chapter trains its missing runs on a GPU (as bnlib sweep)


@functools.lru_cache(maxsize=None)
def _fingerprint(source: str) -> str | None:
    """A data source's fingerprint, or None when it cannot be read here (asked once)."""
    try:
        return data_lib.load(source).fingerprint
    except ConfigError:
        return None


def _names(parameter: str, value) -> tuple[str, ...]:
    """A list parameter: a list or tuple of strings, or one string (a list of one)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{parameter} must be a list of names such as ['resnet-14'], got {value!r}")


def shown(path: str | Path) -> str:
    """A path as readers see it: relative to the project when inside it or beside it
    (``data/runs/cpu``, ``../shared/data/cifar10-jpeg.tar.gz``), never a machine's absolute path;
    names such as ``cifar10`` or ``synthetic`` unchanged."""
    if str(path) in ("cifar10", "synthetic"):
        return str(path)
    resolved = Path(path).resolve()
    if resolved.is_relative_to(ROOT.parent):
        return os.path.relpath(resolved, ROOT)
    return str(path)


@dataclass(frozen=True)
class Plan(Experiments):
    runs_dir: str | None = None
    train_missing: bool = False

    # the parameters a chapter left to its profile, for the set-up line: "seeds 3, epochs 2"
    defaults_used: tuple[str, ...] = ()

    @classmethod
    def from_parameters(cls, profile: str = "smoke", **parameters) -> "Plan":
        """From a chapter's parameters cell, validated as the CLI validates its flags (one line,
        :class:`ConfigError`). ``None`` (or an empty list) keeps the profile's value; a single
        string where a list is expected is a list of one."""
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}: choose from {', '.join(PROFILES)}")
        unknown = set(parameters) - {"models", "modes", "seeds", "epochs", "data", "runs_dir", "device",
                                     "train_missing"}
        if unknown:
            raise ConfigError(f"unknown parameter(s) {', '.join(sorted(unknown))}")
        clean = {k: v for k, v in parameters.items() if v is not None and v != [] and v != ""}
        for name in ("models", "modes"):
            if name in clean:
                clean[name] = _names(name, clean[name])
        for name in clean.get("models", ()):
            lookup(name)  # validated here; spelled as the registry spells them in networks()
        if "modes" in clean:
            for mode in clean["modes"]:
                parse_trainable(mode)
        for name in ("seeds", "epochs"):
            if name in clean:
                value = clean[name]
                if isinstance(value, bool) or not isinstance(value, int) and not (
                        isinstance(value, float) and value.is_integer()) or value < 1:
                    raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
                clean[name] = int(value)
        for name in ("data", "runs_dir", "device"):
            if name in clean and not isinstance(clean[name], str):
                raise ConfigError(f"{name} must be a string, got {clean[name]!r}")
        if "train_missing" in clean and not isinstance(clean["train_missing"], bool):
            raise ConfigError(f"train_missing must be True or False, got {clean['train_missing']!r}")
        clean.setdefault("train_missing", profile == "smoke")  # smoke trains in seconds; others load
        left = tuple(n for n in ("seeds", "epochs", "data") if n not in clean)
        return cls(PROFILES[profile], defaults_used=left, **clean)

    def summary(self) -> str:
        """The set-up line a chapter shows: profile, scale, networks, store, and which
        parameters took the profile's value."""
        values = {"seeds": str(self.n_seeds), "epochs": str(self.n_epochs), "data": results.data_name(self.data_source)}
        fallback = ", ".join(f"{name} {values[name]}" for name in self.defaults_used)
        return (f"profile {self.profile.name}: {self.scale()}, networks {', '.join(self.networks())}, "
                f"results in {shown(self.store)}" + (f" (the profile's {fallback})" if fallback else ""))

    @property
    def shown_data(self) -> str:
        """The data source as readers see it (:func:`shown`)."""
        return shown(self.data_source)

    @property
    def store(self) -> Path:
        return Path(self.runs_dir or self.profile.runs_dir)

    def fingerprint(self) -> str | None:
        """The data set's fingerprint, or None when the data cannot be read here."""
        return _fingerprint(self.data_source)

    def match(self, configs: Sequence[RunConfig]) -> tuple[pd.DataFrame, list[RunConfig]]:
        """Split ``configs`` into stored runs (finished or diverged) and missing ones. The data is
        matched by its fingerprint when a chapter names a data source or trains missing runs;
        otherwise the store's runs are shown whatever data they used (every figure names it), so
        a fresh clone shows the committed results without reading, or downloading, any data."""
        fingerprint = self.fingerprint() if (self.data or self.train_missing) else None
        return results.find(self.store, configs, fingerprint)

    def ensure(self, configs: Sequence[RunConfig]) -> pd.DataFrame:
        """The stored runs of ``configs``. Missing ones are trained when ``train_missing`` is set
        and the data is readable; otherwise they are listed with the command that makes them."""
        found, missing = self.match(configs)
        if missing and self.train_missing and self.fingerprint() is not None:
            from .packs import plan_packs
            from .train import resolve_device, train_pack

            dataset = data_lib.load(self.data_source)
            # on a GPU, runs of one network train together in packs (the sweep's planner); on a
            # CPU one at a time
            size = PACK_ON_GPU if resolve_device(self.device).type == "cuda" else 1
            for pack in plan_packs(missing, max_runs=size):
                train_pack(pack, self.store, dataset=dataset)
            found, missing = self.match(configs)
        if missing:
            print(self.missing_message(missing))
        return found

    def missing_message(self, missing: Sequence[RunConfig]) -> str:
        """What a reader is told about runs a figure lacks: how many, and the commands that make them."""
        head = (f"{len(missing)} run(s) of this figure are not in {shown(self.store)}"
                f" ({self.profile.name} profile); it shows what is there.")
        example = missing[0].flat()
        command = " ".join(["python -m bnlib train"] + [
            f"--{k.replace('_', '-')} {shlex.quote(shown(example[k]) if k == 'data' else str(example[k]))}"
            for k in ("model", "trainable", "epochs", "seed", "data", "bn_init", "feature_init", "normalize")
        ] + [f"--runs-dir {shlex.quote(shown(self.store))}"])
        sweep = f"python -m bnlib sweep --profile {self.profile.name} --runs-dir {shlex.quote(shown(self.store))}"
        return (f"{head}\nTrain them by re-running this chapter with train_missing=True, all at once with\n"
                f"  {sweep}\nor one by one, e.g.\n  {command}")
