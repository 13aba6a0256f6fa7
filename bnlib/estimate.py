"""``python -m bnlib estimate``: the device-hours a profile's experiments would take here.

A few SGD steps of each network of a profile are timed on this machine, through the trainer's
own epoch function (:func:`bnlib.train._run_epoch`: data on the device as uint8, batch
augmentation, the evaluation of the test set), and projected onto the profile's grids: the
experiments of Figures 1 and 2 and Appendices C, D and E (:class:`bnlib.experiments.Experiments`)
and the whole profile, each run counted once however many figures share it.

Runs whose convolutions are frozen (``bn``, ``none``, ``bn,shortcut,output``, Appendix E's ...)
skip the convolutions' weight gradients and cost less than runs that train them (``all``,
``all,-bn``): each network is measured once per kind and that time stands for every run of
the kind. With ``pack`` > 1 a pack of the profile's own runs, as :func:`bnlib.packs.plan_packs`
groups them, is measured as one fused step, and every pack the planner makes of an experiment
is counted at that pack's time (a pack of fewer runs as a full one: its time shrinks less than
its runs do, so this errs high).

Networks left out of ``networks`` are not measured: their time is the nearest measured
network's (of the same kind) scaled by the family's cost, multiply-adds up to a constant
(:func:`bnlib.architectures.cost`), and marked ``extrapolated``.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from . import data as data_lib
from .architectures import cost, lookup
from .config import ConfigError, RunConfig
from .experiments import PROFILES, Experiments
from .packs import Pack, pack_key, plan_packs, trains_convolutions

ESTIMATES = Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "estimates.jsonl"
EXPERIMENTS = ("figure1", "figure2", "bn_init_grid", "feature_init_grid", "ablation_grid")
# The two kinds of run, and the mode measured for each when runs are measured alone.
KINDS = {False: "conv-frozen", True: "conv-trained"}
MEASURED_MODE = {"conv-frozen": "bn", "conv-trained": "all"}


def kind_of(config: RunConfig) -> str:
    return KINDS[trains_convolutions(config)]


def epoch_images(source: str) -> tuple[int, int]:
    """Training and test images of one epoch of ``source``: the synthetic set's, else
    CIFAR-10's 50,000 and 10,000 (every real source of a profile is CIFAR-10 or a copy of it)."""
    if data_lib.check_source(source) == "synthetic":
        ds = data_lib.load(source)
        return ds.train_x.shape[0], ds.test_x.shape[0]
    return tuple(10 * data_lib.CIFAR10_PER_CLASS[split] for split in ("train", "test"))


@dataclass
class Timing:
    """One measured (or extrapolated) pack of ``runs`` runs: seconds per SGD step and per
    evaluated test image, for the pack as a whole."""

    runs: int
    step_seconds: float
    eval_seconds_per_image: float
    flops_per_image: float | None  # training FLOPs of one image summed over the pack's runs
    extrapolated_from: str | None = None

    def epoch_seconds(self, train_images: int, test_images: int, batch_size: int) -> float:
        """One epoch of the whole pack: ceil(n / batch) steps (the last, smaller one counted
        as full) and the evaluation of the test set."""
        return math.ceil(train_images / batch_size) * self.step_seconds + test_images * self.eval_seconds_per_image


def _build(configs: Sequence[RunConfig], device: torch.device):
    """The network and optimizer the trainer builds for these runs (:func:`bnlib.train._train_group`)."""
    from .freezing import apply_trainable
    from .models import build, fuse

    t = configs[0].train
    singles = [build(c.model.model, bn_init=c.model.bn_init, feature_init=c.model.feature_init,
                     normalize=c.model.normalize, num_classes=10, seed=c.train.seed) for c in configs]
    model = (singles[0] if len(singles) == 1 else fuse(singles)).to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if len(configs) == 1:
        params = apply_trainable(model, t.trainable)
        optimizer = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay) \
            if params else None
    else:
        pack = Pack.of(model, [c.train.trainable for c in configs])
        optimizer = pack.optimizer(model, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.compile != "none":
        model = torch.compile(model, mode=None if t.compile == "default" else t.compile)
    return model, optimizer


@functools.lru_cache(maxsize=None)
def _flops_per_image(model: str, trainable: str) -> float:
    from .bench import training_flops_per_image

    return training_flops_per_image(RunConfig.from_flat(model=model, trainable=trainable))


def measure(configs: Sequence[RunConfig], device: torch.device, steps: int, test_images: int) -> Timing:
    """Time ``steps`` SGD steps of these runs trained together (one run, or a pack) and the
    evaluation of ``test_images`` test images, through the trainer's epoch function, after one
    warm-up step with its evaluation (it pays for allocation and cuDNN's algorithm search)."""
    from .bench import random_dataset
    from .train import _run_epoch

    batch = configs[0].train.batch_size
    model, optimizer = _build(configs, device)
    warm = random_dataset(batch, test_images, seed=1).to(device)
    timed = random_dataset(steps * batch, test_images).to(device)
    _run_epoch(model, optimizer, warm, list(configs), 0, progress=False)
    row = _run_epoch(model, optimizer, timed, list(configs), 0, progress=False)[0]
    train_seconds = steps * batch / row["images_per_s"]
    flops = sum(_flops_per_image(c.model.model, c.train.trainable) for c in configs)
    return Timing(len(configs), train_seconds / steps, max(0.0, row["seconds"] - train_seconds) / test_images, flops)


def _measured_runs(runs: Sequence[RunConfig], pack: int, memory: float | None) -> list[RunConfig]:
    """What to measure for one network and kind: with ``pack`` 1, one run (the kind's measured
    mode when the profile has it); else a pack the planner makes of ``pack`` consecutive runs
    of the largest group of these runs that could pack together (the largest pack any of the
    experiments can have), starting at the kind's measured mode: a pack of ``none`` runs alone
    would skip every backward pass, which the kind's other packs do not."""
    preferred = [i for i, c in enumerate(runs) if c.train.trainable == MEASURED_MODE[kind_of(c)]]
    if pack == 1:
        return [runs[preferred[0] if preferred else 0]]
    groups: dict[RunConfig, list[RunConfig]] = {}
    for c in runs:
        groups.setdefault(pack_key(c), []).append(c)
    largest = max(groups.values(), key=len)
    first = next((i for i, c in enumerate(largest) if c.train.trainable == MEASURED_MODE[kind_of(c)]), 0)
    first = max(0, min(first, len(largest) - pack))
    return plan_packs(largest[first:first + pack], max_runs=pack, memory_budget=memory)[0]


def estimate(profile: str, *, pack: int = 1, device: str = "auto", steps: int = 3,
             networks: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the profile's networks (``networks``: a subset; the others extrapolated) and
    project the device-hours of each experiment and of the whole profile. ``log(text)`` is
    called before each measurement. Raises ConfigError on bad input or a network that cannot
    fit the device."""
    from .bench import matmul_flops_per_s
    from .train import _device_memory, check_memory, hardware, resolve_device

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose from {', '.join(PROFILES)}")
    for name, value in (("pack", pack), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    dev = resolve_device(device)
    plan = Experiments(PROFILES[profile], device=device)
    grids = {name: getattr(plan, name)() for name in EXPERIMENTS}
    every = plan.all_runs()
    present = list(dict.fromkeys(c.model.model for c in every))
    chosen = present if not networks else list(dict.fromkeys(lookup(n).name for n in networks))
    outside = [n for n in chosen if n not in present]
    if outside:
        raise ConfigError(f"{', '.join(outside)} not in the {profile} profile: choose from {', '.join(present)}")
    memory = _device_memory(dev)
    for name in chosen:  # before anything is measured: one line naming the network
        check_memory(lookup(name), every[0].train.batch_size, dev)

    by_network: dict[tuple[str, str], list[RunConfig]] = {}
    for c in every:
        by_network.setdefault((c.model.model, kind_of(c)), []).append(c)
    train_images, test_images = epoch_images(plan.data_source)
    batch = every[0].train.batch_size
    measured_test = min(test_images, steps * batch)
    timings: dict[tuple[str, str], Timing] = {}
    for (name, kind), runs in by_network.items():
        if name in chosen:
            members = _measured_runs(runs, pack, memory)
            if log is not None:
                log(f"measuring {name} {kind} ({', '.join(c.train.trainable for c in members)}): "
                    f"{steps} step(s) after a warm-up step")
            timings[name, kind] = measure(members, dev, steps, measured_test)
    measured = dict(timings)
    for (name, kind), runs in by_network.items():
        if (name, kind) in measured:
            continue
        size = len(_measured_runs(runs, pack, memory))
        references = [n for (n, k) in measured if k == kind]
        if not references:
            raise ConfigError(f"no measured network trains {kind} runs to extrapolate {name} from")
        # the measured network closest in cost: extrapolation over the shortest stretch
        ref = min(references, key=lambda n: abs(math.log(cost(n) / cost(name))))
        base = measured[ref, kind]
        scale = cost(name) / cost(ref) * size / base.runs
        timings[name, kind] = Timing(size, base.step_seconds * scale, base.eval_seconds_per_image * scale, None,
                                     extrapolated_from=ref)

    def pack_seconds(config: RunConfig) -> float:  # one epoch of one pack of ``config``'s network and kind
        return timings[config.model.model, kind_of(config)].epoch_seconds(train_images, test_images, batch)

    def hours(configs: Sequence[RunConfig]) -> tuple[float, list[list[RunConfig]]]:
        packs = plan_packs(configs, max_runs=pack, memory_budget=memory if pack > 1 else None)
        return sum(p[0].train.epochs * pack_seconds(p[0]) for p in packs) / 3600, packs

    total, packs = hours(every)
    peak = matmul_flops_per_s(dev)
    nets: dict[str, dict[str, Any]] = {}
    for (name, kind), runs in by_network.items():
        t = timings[name, kind]
        entry = nets.setdefault(name, {"seconds_per_epoch": {}, "images_per_s": {}, "fraction_of_matmul_rate": {},
                                       "runs": {}, "packs": {}, "pack_runs": {}, "extrapolated": False})
        per_run = t.epoch_seconds(train_images, test_images, batch) / t.runs
        images_per_s = t.runs * batch / t.step_seconds  # training images of all the pack's runs
        entry["seconds_per_epoch"][kind] = _round(per_run)
        entry["images_per_s"][kind] = _round(images_per_s)
        entry["fraction_of_matmul_rate"][kind] = (
            None if t.flops_per_image is None else _round(batch * t.flops_per_image / t.step_seconds / peak))
        entry["runs"][kind] = len(runs)
        entry["packs"][kind] = sum(1 for p in packs if (p[0].model.model, kind_of(p[0])) == (name, kind))
        entry["pack_runs"][kind] = t.runs
        if t.extrapolated_from:
            entry["extrapolated"] = True
            entry.setdefault("extrapolated_from", {})[kind] = t.extrapolated_from
    return {
        "profile": profile, "device": str(dev), "hardware": hardware(dev), "torch_version": torch.__version__,
        "pack": pack, "hours": _round(total),
        "experiments": {name: _round(hours(runs)[0]) for name, runs in grids.items()},
        "networks": nets,
        "runs": len(every), "epochs": plan.n_epochs, "scale": plan.scale(), "steps": steps,
        "train_images": train_images, "test_images": test_images, "batch_size": batch,
        "matmul_gflops_per_s": round(peak / 1e9, 1), "python_version": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def table(result: dict[str, Any]) -> str:
    """The estimate as a reader reads it: each network's measured speed, each experiment's
    hours and the whole profile's."""
    pack = result["pack"]
    lines = [f"{result['profile']} profile on {result['hardware']} ({result['device']}, torch "
             f"{result['torch_version']}): {result['scale']}, "
             + ("one run at a time" if pack == 1 else f"packs of up to {pack} runs"),
             f"{'network':<12} {'kind':<13} {'runs':>5} {'packs':>5} {'s/epoch/run':>12} {'img/s':>9} {'matmul':>7}"]
    marked = False
    for name, n in result["networks"].items():
        for kind in n["runs"]:
            star = "*" if n.get("extrapolated_from", {}).get(kind) else ""
            marked |= bool(star)
            fraction = n["fraction_of_matmul_rate"][kind]
            lines.append(f"{name + star:<12} {kind:<13} {n['runs'][kind]:>5} {n['packs'][kind]:>5} "
                         f"{n['seconds_per_epoch'][kind]:>12,.1f} {n['images_per_s'][kind]:>9,.0f} "
                         f"{'' if fraction is None else f'{100 * fraction:.1f}%':>7}")
    if marked:
        lines.append("* not measured: extrapolated from the nearest measured network by the family's cost")
    lines.append("")
    for name, h in result["experiments"].items():
        lines.append(f"{name:<18} {h:>10,.2f} device-hours")
    lines.append(f"{'whole profile':<18} {result['hours']:>10,.2f} device-hours "
                 f"({result['runs']} runs, each counted once)")
    return "\n".join(lines)


def append(result: dict[str, Any], out: Path = ESTIMATES) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(json.dumps(result) + "\n")
