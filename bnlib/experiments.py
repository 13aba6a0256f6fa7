"""What each figure needs, per profile: grids of run configs, and nothing else (no I/O).

A profile fixes the scale: ``smoke`` (synthetic data, tiny networks, seconds: for CI),
``cpu`` (real CIFAR-10 on a 2-core machine in hours) and ``paper`` (Appendix B exactly).
:class:`Experiments` is a profile with a chapter's overrides applied; its methods are the
grids of the paper's figures and appendices. The sweep, the book and the estimate all read
these grids; finding and training their runs is :mod:`bnlib.plan`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .architectures import canonical_name, lookup
from .config import RunConfig
from .init import BN_INITS, FEATURE_INITS

ROOT = Path(__file__).resolve().parents[1]

FIGURE2_MODES = ("all", "none", "bn", "bn,shortcut,output", "shortcut,output")
FIGURE1_MODES = ("all", "all,-bn")
# Appendix E: (label, trainable, normalize)
ABLATIONS = (
    ("γ/β/N", "bn", True), ("γ/N", "gamma", True), ("β/N", "beta", True), ("γ/β", "bn", False),
    ("All", "all", True), ("None", "none", True),
)


@dataclass(frozen=True)
class Profile:
    name: str
    data: str  # "" for the real data this machine has (:func:`bnlib.data.default_real_data`)
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


@dataclass(frozen=True)
class Experiments:
    """A profile with a chapter's overrides applied (``None`` keeps the profile's value): the
    scale of every grid it builds, and the grids."""

    profile: Profile
    models: tuple[str, ...] | None = None  # None: the profile's deep and wide networks
    modes: tuple[str, ...] | None = None  # None: each figure's own modes
    seeds: int | None = None
    epochs: int | None = None
    data: str | None = None
    device: str = "auto"

    # ------------------------------------------------------------------ the scale
    @property
    def n_seeds(self) -> int:
        return self.seeds or self.profile.seeds

    @property
    def n_epochs(self) -> int:
        return self.epochs or self.profile.epochs

    @property
    def data_source(self) -> str:
        from .data import default_real_data

        return self.data or self.profile.data or default_real_data()

    def seeds_of(self, network: str) -> int:
        """Replicates of one network: the profile's, or fewer for its costliest networks unless a
        chapter asks for a number of seeds."""
        return self.n_seeds if self.seeds is not None else dict(self.profile.fewer_seeds).get(network, self.n_seeds)

    def scale(self) -> str:
        """'2 epochs, 3 seed(s) (2 for resnet-32, wrn-14-2; 1 for resnet-56)': what this plan trains."""
        fewer: dict[int, list[str]] = {}
        for network in self.networks():
            if self.seeds_of(network) != self.n_seeds:
                fewer.setdefault(self.seeds_of(network), []).append(network)
        note = "; ".join(f"{n} for {', '.join(nets)}" for n, nets in sorted(fewer.items(), reverse=True))
        return f"{self.n_epochs} epochs, {self.n_seeds} seed(s)" + (f" ({note})" if note else "")

    def networks(self, which: str = "all") -> tuple[str, ...]:
        """The deep networks, the wide ones, or both (``"deep"``, ``"wide"``, ``"all"``), each
        by its one name: the wide series starts at ``resnet-14`` (which WRN-14-1 is). Networks a
        chapter names go to the series their name asks for (the registry's ``Network.series``)."""
        if self.models:
            deep = tuple(m for m in self.models if lookup(m).series == "deep")
            wide = tuple(m for m in self.models if lookup(m).series == "wide")
        else:
            deep, wide = self.profile.deep, self.profile.wide
        deep, wide = (tuple(dict.fromkeys(map(canonical_name, names))) for names in (deep, wide))
        return {"deep": deep, "wide": wide, "all": tuple(dict.fromkeys(deep + wide))}[which]

    def case_study(self) -> str:
        nets = self.networks()
        return self.profile.case_study if self.profile.case_study in nets or not self.models else nets[-1]

    # ------------------------------------------------------------------ the grids
    def config(self, model: str, trainable: str, seed: int, **fields) -> RunConfig:
        return RunConfig.from_flat(model=model, trainable=trainable, seed=seed, epochs=self.n_epochs,
                                   data=self.data_source, device=self.device, **fields)

    def grid(self, networks: Iterable[str], modes: Iterable[str], **fields) -> list[RunConfig]:
        modes = self.modes or tuple(modes)
        configs = [self.config(n, m, s, **fields) for n in networks for m in modes for s in range(self.seeds_of(n))]
        return list(dict.fromkeys(configs))

    def figure1(self) -> list[RunConfig]:
        return self.grid(self.networks(), FIGURE1_MODES)

    def figure2(self) -> list[RunConfig]:
        return self.grid(self.networks(), FIGURE2_MODES)

    def gamma_grid(self) -> list[RunConfig]:
        """Figures 5, 6 and 7: the All and BatchNorm-only runs of Figure 2, whose γ they study."""
        return [c for c in self.figure2() if c.train.trainable in ("all", "bn")]

    def _init_networks(self) -> list[str]:
        return [n for n in self.profile.init_networks if n in self.networks()] or list(self.networks()[:1])

    def bn_init_grid(self) -> list[RunConfig]:
        """Figure 2's purple line and Appendix D: every BatchNorm init (the init registry's) on
        the init networks."""
        return [c for init in BN_INITS for c in self.grid(self._init_networks(), ("all", "bn"), bn_init=init)]

    def feature_init_grid(self) -> list[RunConfig]:
        """Appendix C: BatchNorm-only training with each feature initialisation of the registry."""
        return [c for init in FEATURE_INITS for c in self.grid(self._init_networks(), ("bn",), feature_init=init)]

    def ablation_grid(self) -> list[RunConfig]:
        """Appendix E: gamma, beta and normalisation switched on and off."""
        return [self.config(n, mode, s, normalize=norm)
                for n in self._init_networks() for _, mode, norm in ABLATIONS for s in range(self.seeds_of(n))]

    def all_runs(self) -> list[RunConfig]:
        """Every run the chapters need: Figures 1 and 2 and Appendices C, D and E, each once."""
        return list(dict.fromkeys(self.figure1() + self.figure2() + self.bn_init_grid()
                                  + self.feature_init_grid() + self.ablation_grid()))


# --------------------------------------------------------------------------- the scale bridge

# Chapter 9's epoch ladder, between the cpu profile's 2 epochs and the paper's 160: ResNet-14 in
# BN-only and All modes (Appendix B's schedule scaled: lr drops at 50% and 75% of training),
# two seeds up to 16 epochs, and ResNet-32 BN-only at 16. Its store is data/runs/scale; both it
# and the price of JPEG are trained by ``python -m bnlib sweep --experiment NAME`` (EXPERIMENT_STORES).
LADDER_EPOCHS = (4, 8, 16, 32)
LADDER_SEEDS = {4: 2, 8: 2, 16: 2, 32: 1}
# The price of JPEG: the same two modes at 16 epochs on copies re-encoded at lower qualities.
JPEG_QUALITIES = (50, 25)
JPEG_EPOCHS = 16
SCALE_RUNS_DIR = str(ROOT / "data" / "runs" / "scale")
PAPER_RUNS_DIR = PROFILES["paper"].runs_dir
# ``sweep --experiment NAME``: each named experiment and the store it trains into by default,
# where the book looks for it (:mod:`bnlib.cli` re-encodes the copies the price of JPEG trains
# on before it sweeps).
EXPERIMENT_STORES = {"scale-ladder": SCALE_RUNS_DIR, "jpeg-price": SCALE_RUNS_DIR, "paper-on-cpu": PAPER_RUNS_DIR}


def scale_ladder(data: str) -> list[RunConfig]:
    """The epoch ladder's runs on ``data``, in the order ``sweep --experiment scale-ladder``
    trains them: seed 0 of every rung first, cheapest first (ResNet-32 at 16 epochs costs about
    as much as ResNet-14 at 32), then the second seeds, so that a ladder cut short still spans
    every training length: when time runs short, the second seeds are what is left out."""
    def run(model: str, mode: str, epochs: int, seed: int) -> RunConfig:
        return RunConfig.from_flat(model=model, trainable=mode, epochs=epochs, seed=seed, data=data)

    first = [run("resnet-14", mode, epochs, 0) for epochs in LADDER_EPOCHS[:-1] for mode in ("bn", "all")]
    first.append(run("resnet-32", "bn", 16, 0))
    first += [run("resnet-14", mode, LADDER_EPOCHS[-1], 0) for mode in ("bn", "all")]
    second = [run("resnet-14", mode, epochs, seed) for epochs in LADDER_EPOCHS for mode in ("bn", "all")
              for seed in range(1, LADDER_SEEDS[epochs])]
    return first + second


def jpeg_price(copies: dict[int, str]) -> list[RunConfig]:
    """ResNet-14 BN-only and All for 16 epochs on each re-encoded copy (quality -> data source),
    highest quality first."""
    return [RunConfig.from_flat(model="resnet-14", trainable=mode, epochs=JPEG_EPOCHS, seed=0, data=source)
            for quality, source in sorted(copies.items(), reverse=True) for mode in ("bn", "all")]


# --------------------------------------------------------------------------- the paper's scale on a CPU

def paper_on_cpu(data: str) -> list[RunConfig]:
    """Appendix B's runs (160 epochs) that a 2-core CPU can train in days, in the order
    ``sweep --experiment paper-on-cpu`` trains them: each step completes a figure or an
    appendix at ResNet-14, or the ResNet-110 case study, before the next begins.

    1. ResNet-14 None, BN+shortcut+output, shortcut+output and γ/β frozen: Figures 1 and 2
       (All and BN-only, seed 0, are in the paper store already).
    2. ResNet-110 BN-only: Figures 3, 5 and 7's case study.
    3. Appendix D at ResNet-14: γ = 1, γ ~ U[-1, 1], γ = β = 1 in BN-only mode, γ = β = 1 in All.
    4. Appendix E: γ/N, β/N, γ/β without normalisation.
    5. Appendix C: He uniform, binary and orthogonal features (BN-only).
    6. ResNet-110 None and All; seeds 1 and 2 of ResNet-14 BN-only and All.
    """
    def run(model: str, trainable: str, seed: int = 0, **fields) -> RunConfig:
        return RunConfig.from_flat(model=model, trainable=trainable, seed=seed, epochs=PROFILES["paper"].epochs,
                                   data=data, **fields)

    figures = [run("resnet-14", mode) for mode in ("none", "bn,shortcut,output", "shortcut,output", "all,-bn")]
    case_study = [run("resnet-110", "bn")]
    appendix_d = [run("resnet-14", "bn", bn_init=init) for init in ("ones", "symmetric", "ones-beta-one")]
    appendix_d.append(run("resnet-14", "all", bn_init="ones-beta-one"))
    appendix_e = [run("resnet-14", "gamma"), run("resnet-14", "beta"), run("resnet-14", "bn", normalize=False)]
    appendix_c = [run("resnet-14", "bn", feature_init=init) for init in ("he-uniform", "binary", "orthogonal")]
    more = [run("resnet-110", "none"), run("resnet-110", "all")]
    more += [run("resnet-14", mode, seed) for seed in (1, 2) for mode in ("bn", "all")]
    return figures + case_study + appendix_d + appendix_e + appendix_c + more
