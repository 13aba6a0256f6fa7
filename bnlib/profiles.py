"""Profiles and experiment grids: which runs each chapter of the book needs.

A profile fixes the scale: ``smoke`` (synthetic data, tiny networks, seconds: for CI),
``cpu`` (real CIFAR-10 on a 2-core machine in hours) and ``paper`` (Appendix B exactly).
A chapter's ``parameters`` cell names a profile and may override any of its fields; a
:class:`Plan` turns that into run configs, finds the ones already in the results store, trains
the missing ones when asked to, and otherwise says which are missing and how to make them.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from . import data as data_lib
from . import results
from .config import ConfigError, RunConfig, all_fields
from .freezing import mode_identity
from .models import parse_name, same_network

ROOT = Path(__file__).resolve().parents[1]
JPEG_COPY = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

FIGURE2_MODES = ("all", "none", "bn", "bn,shortcut,output", "shortcut,output")
FIGURE1_MODES = ("all", "all,-bn")
FEATURE_INITS = ("he-normal", "he-uniform", "binary", "orthogonal")
BN_INITS = ("uniform", "ones", "symmetric", "ones-beta-one")
# Appendix E: (label, trainable, normalize)
ABLATIONS = (
    ("γ/β/N", "bn", True), ("γ/N", "gamma", True), ("β/N", "beta", True), ("γ/β", "bn", False),
    ("All", "all", True), ("None", "none", True),
)


def default_cpu_data() -> str:
    """The real data a CPU profile reads: $BNLIB_DATA, else the JPEG copy beside the project,
    else torchvision's CIFAR-10 (downloaded where the network allows)."""
    return os.environ.get("BNLIB_DATA") or (str(JPEG_COPY) if JPEG_COPY.is_file() else "cifar10")


@dataclass(frozen=True)
class Profile:
    name: str
    data: str
    deep: tuple[str, ...]  # networks of the depth sweeps (W = 1)
    wide: tuple[str, ...]  # networks of the width sweeps (D = 2)
    case_study: str  # the paper's ResNet-110 (Figures 3, 5, 7)
    init_networks: tuple[str, ...]  # Appendices C, D and E
    epochs: int
    seeds: int
    runs_dir: str
    # networks too costly here for the profile's seeds, with the replicates each gets instead
    fewer_seeds: tuple[tuple[str, int], ...] = ()


PROFILES = {
    "smoke": Profile("smoke", "synthetic", ("resnet-8", "resnet-14"), ("wrn-8-1", "wrn-8-2"), "resnet-8",
                     ("resnet-8",), epochs=1, seeds=1, runs_dir=str(ROOT / ".cache" / "runs-smoke")),
    # Sized for about 12 hours of a 2-core CPU from the speeds its first runs measured (README: the
    # grid, its cost): with 3 seeds of ResNet-32 and WRN-14-2 it came to about 16.
    "cpu": Profile("cpu", "", ("resnet-14", "resnet-32", "resnet-56"), ("wrn-14-1", "wrn-14-2", "wrn-14-4"),
                   "resnet-32", ("resnet-14",), epochs=2, seeds=3, runs_dir=str(ROOT / "data" / "runs" / "cpu"),
                   fewer_seeds=(("resnet-32", 2), ("wrn-14-2", 2), ("resnet-56", 1), ("wrn-14-4", 1))),
    "paper": Profile("paper", "cifar10",
                     ("resnet-14", "resnet-32", "resnet-56", "resnet-110", "resnet-218", "resnet-434", "resnet-866"),
                     ("wrn-14-1", "wrn-14-2", "wrn-14-4", "wrn-14-8", "wrn-14-16", "wrn-14-32"),
                     "resnet-110", ("resnet-14", "resnet-32", "resnet-56", "resnet-110", "resnet-218",
                                    "resnet-434", "resnet-866", "wrn-14-2", "wrn-14-4", "wrn-14-8",
                                    "wrn-14-16", "wrn-14-32"),
                     epochs=160, seeds=5, runs_dir=str(ROOT / "data" / "runs" / "paper")),
}


@dataclass
class Plan:
    """A profile with a chapter's overrides applied: the scale of every grid it builds."""

    profile: Profile
    models: tuple[str, ...] | None = None  # None: the profile's deep and wide networks
    modes: tuple[str, ...] | None = None  # None: each figure's own modes
    seeds: int | None = None
    epochs: int | None = None
    data: str | None = None
    runs_dir: str | None = None
    device: str = "auto"
    train_missing: bool = False
    _fingerprint: str | None = field(default=None, repr=False)

    @classmethod
    def from_parameters(cls, profile: str = "smoke", **overrides) -> "Plan":
        """From a chapter's parameters cell; ``None`` (or an empty list) keeps the profile's value."""
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}: choose from {', '.join(PROFILES)}")
        clean = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in overrides.items()
                 if v is not None and v != [] and v != ""}
        clean.setdefault("train_missing", profile == "smoke")  # smoke trains in seconds; others load
        if "models" in clean:  # validated and spelled as the registry spells them
            clean["models"] = tuple(parse_name(name).name for name in clean["models"])
        return cls(PROFILES[profile], **clean)

    # ------------------------------------------------------------------ the scale
    @property
    def n_seeds(self) -> int:
        return self.seeds or self.profile.seeds

    def scale(self) -> str:
        """'2 epochs, 3 seed(s) (2 for resnet-32, wrn-14-2; 1 for resnet-56)': what this plan trains."""
        fewer: dict[int, list[str]] = {}
        for network in self.networks():
            if self.seeds_of(network) != self.n_seeds:
                fewer.setdefault(self.seeds_of(network), []).append(network)
        note = "; ".join(f"{n} for {', '.join(nets)}" for n, nets in sorted(fewer.items(), reverse=True))
        return f"{self.n_epochs} epochs, {self.n_seeds} seed(s)" + (f" ({note})" if note else "")

    def seeds_of(self, network: str) -> int:
        """Replicates of one network: the profile's, or fewer for its costliest networks unless a
        chapter asks for a number of seeds."""
        return self.n_seeds if self.seeds is not None else dict(self.profile.fewer_seeds).get(network, self.n_seeds)

    @property
    def n_epochs(self) -> int:
        return self.epochs or self.profile.epochs

    @property
    def data_source(self) -> str:
        return self.data or self.profile.data or default_cpu_data()

    @property
    def store(self) -> Path:
        return Path(self.runs_dir or self.profile.runs_dir)

    def networks(self, which: str = "all") -> tuple[str, ...]:
        """The deep networks, the wide ones, or both (``"deep"``, ``"wide"``, ``"all"``), each
        by its one name: the wide series starts at ``resnet-14`` (which WRN-14-1 is)."""
        if self.models:
            deep = tuple(m for m in self.models if m.startswith("resnet-"))
            wide = tuple(m for m in self.models if m.startswith("wrn-"))
        else:
            deep, wide = self.profile.deep, self.profile.wide
        deep, wide = (tuple(dict.fromkeys(map(same_network, names))) for names in (deep, wide))
        return {"deep": deep, "wide": wide, "all": tuple(dict.fromkeys(deep + wide))}[which]

    def case_study(self) -> str:
        nets = self.networks()
        return self.profile.case_study if self.profile.case_study in nets or not self.models else nets[-1]

    def config(self, model: str, trainable: str, seed: int, **fields) -> RunConfig:
        return RunConfig.from_flat(model=model, trainable=trainable, seed=seed, epochs=self.n_epochs,
                                   data=self.data_source, device=self.device, **fields)

    def grid(self, networks: Iterable[str], modes: Iterable[str], **fields) -> list[RunConfig]:
        modes = self.modes or tuple(modes)
        configs = [self.config(n, m, s, **fields) for n in networks for m in modes for s in range(self.seeds_of(n))]
        return list(dict.fromkeys(configs))

    # ------------------------------------------------------------------ the chapters' grids
    def figure1(self) -> list[RunConfig]:
        return self.grid(self.networks(), FIGURE1_MODES)

    def figure2(self) -> list[RunConfig]:
        return self.grid(self.networks(), FIGURE2_MODES)

    def gamma_grid(self) -> list[RunConfig]:
        """Figures 5, 6 and 7: the All and BatchNorm-only runs of Figure 2, whose γ they study."""
        return [c for c in self.figure2() if c.train.trainable in ("all", "bn")]

    def bn_init_grid(self) -> list[RunConfig]:
        """Figure 2's purple line and Appendix D: every BatchNorm init on the init networks."""
        nets = [n for n in self.profile.init_networks if n in self.networks()] or list(self.networks()[:1])
        return [c for init in BN_INITS for c in self.grid(nets, ("all", "bn"), bn_init=init)]

    def feature_init_grid(self) -> list[RunConfig]:
        """Appendix C: BatchNorm-only training with each feature initialisation."""
        nets = [n for n in self.profile.init_networks if n in self.networks()] or list(self.networks()[:1])
        return [c for init in FEATURE_INITS for c in self.grid(nets, ("bn",), feature_init=init)]

    def ablation_grid(self) -> list[RunConfig]:
        """Appendix E: gamma, beta and normalisation switched on and off."""
        nets = [n for n in self.profile.init_networks if n in self.networks()] or list(self.networks()[:1])
        return [self.config(n, mode, s, normalize=norm)
                for n in nets for _, mode, norm in ABLATIONS for s in range(self.seeds_of(n))]

    def all_runs(self) -> list[RunConfig]:
        """Every run the chapters need: Figures 1 and 2 and Appendices C, D and E, each once."""
        return list(dict.fromkeys(self.figure1() + self.figure2() + self.bn_init_grid()
                                  + self.feature_init_grid() + self.ablation_grid()))

    # ------------------------------------------------------------------ finding and training runs
    def fingerprint(self) -> str | None:
        """The data set's fingerprint, or None when the data cannot be read here."""
        if self._fingerprint is None:
            try:
                self._fingerprint = data_lib.load(self.data_source).fingerprint
            except ConfigError:
                self._fingerprint = ""  # unreadable here: do not try (or download) again
        return self._fingerprint or None

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

    def match(self, configs: Sequence[RunConfig]) -> tuple[pd.DataFrame, list[RunConfig]]:
        """Split ``configs`` into stored runs (finished or diverged) and missing ones.

        Runs are matched on every hashed config field, the network by :func:`same_network`
        (a run stored as ``wrn-14-1`` by older code is ``resnet-14``) and the training mode by
        the tensors it trains. The data is matched by its fingerprint when a chapter
        names a data source or trains missing runs; otherwise the store's runs are shown
        whatever data they used (every figure names it), so a fresh clone shows the committed
        results without reading, or downloading, any data."""
        stored = results.load(self.store)
        if not stored.empty:
            stored = stored[stored["status"].isin(["complete", "diverged"])]
            fingerprint = self.fingerprint() if (self.data or self.train_missing) else None
            if fingerprint is not None:
                stored = stored[stored["data_fingerprint"] == fingerprint]
        keys = {_key(row): index for index, row in stored.iterrows()} if not stored.empty else {}
        rows, missing = [], []
        for config in configs:
            index = keys.get(_key(config.flat()))
            if index is None:
                missing.append(config)
            else:
                rows.append(stored.loc[index].copy())
                rows[-1]["model"] = config.model.model
        return (pd.DataFrame(rows).reset_index(drop=True) if rows else stored.iloc[:0]), missing

    def missing_message(self, missing: Sequence[RunConfig]) -> str:
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


def _key(fields) -> tuple:
    """What identifies a run apart from its data: hashed fields, mode as trained tensors."""
    model = same_network(str(fields["model"]))
    hashed = [f.name for f in all_fields()
              if f.metadata.get("hashed", True) and f.name not in ("data", "trainable", "model")]
    return (model, mode_identity(str(fields["trainable"]), model), *(str(fields[n]) for n in hashed))
