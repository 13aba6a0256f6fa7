"""``python -m bnlib bench --layouts``: how best to spend a CPU's cores on many runs.

Three ways to train runs of one network on an N-core CPU, measured alternately on the same
machine (a busy machine slows each alike):

* ``one``: one run at a time with N threads (the sweep's default on a CPU);
* ``side by side``: N runs at once, each its own process with one thread;
* ``pack``: N runs fused into one network (:mod:`bnlib.packs`), N threads.

Each figure is total training images per second over every run. The fastest layout is the one
to train a long list of runs with (``sweep --pack N`` or ``--cpus-per-run 1``).
"""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import statistics
from pathlib import Path
from typing import Any

import torch

from .bench import RESULTS, bnlib_images_per_s, pack_modes, random_dataset
from .config import RunConfig

LAYOUTS = ("one", "side by side", "pack")


def _measure(config: RunConfig, steps: int, threads: int, runs: int, modes: list[str] | None = None) -> float:
    torch.set_num_threads(threads)
    dataset = random_dataset(steps * config.train.batch_size)
    bnlib_images_per_s(config, random_dataset(2 * config.train.batch_size, seed=1), runs, modes=modes)  # warm-up
    return bnlib_images_per_s(config, dataset, runs, modes=modes)


def _child(config: dict, steps: int, start, out) -> None:
    start.wait()  # every process starts its timed epoch together
    out.put(_measure(RunConfig.from_flat(**config), steps, threads=1, runs=1))


def _side_by_side(config: RunConfig, steps: int, runs: int) -> float:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads inherited
    start, out = context.Barrier(runs), context.Queue()
    children = [context.Process(target=_child, args=(config.flat(), steps, start, out)) for _ in range(runs)]
    for child in children:
        child.start()
    speeds = [out.get() for _ in children]
    for child in children:
        child.join()
    return sum(speeds)


def layouts(model: str, trainable: str, *, steps: int = 20, rounds: int = 2, cores: int | None = None,
            out: Path | None = RESULTS) -> dict[str, Any]:
    """Total images/s of each layout (:data:`LAYOUTS`) for ``cores`` runs of ``model`` in mode
    ``trainable`` on the CPU; the result (with hardware and date) is appended to ``out``."""
    from .train import hardware

    cores = cores or os.cpu_count() or 1
    config = RunConfig.from_flat(model=model, trainable=trainable, device="cpu", data="synthetic")
    threads = torch.get_num_threads()
    modes = pack_modes(config, cores)
    speeds: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    for _ in range(rounds):
        speeds["one"].append(_measure(config, steps, cores, 1))
        speeds["side by side"].append(_side_by_side(config, steps, cores))
        speeds["pack"].append(_measure(config, steps, cores, cores, modes))
    torch.set_num_threads(threads)
    median = {layout: round(statistics.median(v), 1) for layout, v in speeds.items()}
    row = {
        "benchmark": "cpu-layouts", "model": model, "trainable": trainable, "runs": cores, "steps": steps,
        "rounds": rounds, "pack_modes": modes, "images_per_s": median,
        "speedup_over_one": {layout: round(v / median["one"], 3) for layout, v in median.items()},
        "fastest": max(median, key=median.get),
        "hardware": hardware(torch.device("cpu")), "torch_version": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row
