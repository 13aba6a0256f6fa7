"""A chapter's plan: its experiments (:mod:`bnlib.experiments`) and the store that holds them.

:class:`Plan` finds a figure's runs in the store (by address, :func:`bnlib.results.find`),
trains the missing ones when a chapter asks for it (``train_missing``), and otherwise says
which are missing and the command that makes them.
"""

from __future__ import annotations

import functools
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
from .experiments import PROFILES, Experiments

__all__ = ["PROFILES", "Plan"]


@functools.lru_cache(maxsize=None)
def _fingerprint(source: str) -> str | None:
    """A data source's fingerprint, or None when it cannot be read here (asked once)."""
    try:
        return data_lib.load(source).fingerprint
    except ConfigError:
        return None


@dataclass(frozen=True)
class Plan(Experiments):
    runs_dir: str | None = None
    train_missing: bool = False

    @classmethod
    def from_parameters(cls, profile: str = "smoke", **overrides) -> "Plan":
        """From a chapter's parameters cell; ``None`` (or an empty list) keeps the profile's value."""
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}: choose from {', '.join(PROFILES)}")
        clean = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in overrides.items()
                 if v is not None and v != [] and v != ""}
        clean.setdefault("train_missing", profile == "smoke")  # smoke trains in seconds; others load
        if "models" in clean:  # validated and spelled as the registry spells them
            clean["models"] = tuple(lookup(name).name for name in clean["models"])
        return cls(PROFILES[profile], **clean)

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
            from .train import train

            dataset = data_lib.load(self.data_source)
            for config in missing:
                train(config, self.store, dataset=dataset)
            found, missing = self.match(configs)
        if missing:
            print(self.missing_message(missing))
        return found

    def missing_message(self, missing: Sequence[RunConfig]) -> str:
        """What a reader is told about runs a figure lacks: how many, and the commands that make them."""
        head = (f"{len(missing)} run(s) of this figure are not in {self.store}"
                f" ({self.profile.name} profile); it shows what is there.")
        example = missing[0].flat()
        command = " ".join(["python -m bnlib train"] + [
            f"--{k.replace('_', '-')} {shlex.quote(str(example[k]))}"
            for k in ("model", "trainable", "epochs", "seed", "data", "bn_init", "feature_init", "normalize")
        ] + [f"--runs-dir {shlex.quote(str(self.store))}"])
        sweep = f"python -m bnlib sweep --profile {self.profile.name} --runs-dir {shlex.quote(str(self.store))}"
        return (f"{head}\nTrain them by re-running this chapter with train_missing=True, all at once with\n"
                f"  {sweep}\nor one by one, e.g.\n  {command}")
