"""Train as much of the `paper` profile as fits in one short GPU lease (minutes, not days).

Issue 6 asks for the paper's own scale (Appendix B: 160 epochs) wherever a GPU is lent, starting
with ResNet-14 to ResNet-110 in BatchNorm-only and All modes. A lease here is about ten minutes
on a machine with no network, where Ray cannot be installed, so this script does the little
scheduling a lease needs itself, with bnlib's own trainer:

1. it measures, on the GPU, how fast each network trains in each mode with 1 and with the
   profile's full number of replicates fused into one network (``train_replicates``), timing
   an epoch of random images after a warm-up epoch;
2. from those speeds it chooses the seeds and networks that fit the time budget: as many
   networks as fit (in the order given, so the depth series grows from ResNet-14), then as many
   seeds as fit for all of them;
3. it trains network by network, BatchNorm-only and All side by side in two processes (their
   speeds are measured that way too), and stores each run exactly as ``python -m bnlib train``
   would, clamping curves included;
4. the networks after the plan's train too, in order, while time is left: a run whose next
   epoch would end past the deadline stops there. It is not counted, but its checkpoint (every
   epoch, like any run's) is packed by scripts/gpu-lease.sh, so a later lease resumes it where
   it stopped instead of starting over. 160 epochs of a deep network can so span leases.

Everything it decided and measured goes to ``--report`` (JSON), so the lease can be reported
from what was run. scripts/gpu-lease.sh runs it on a lent machine. The first lease ran

    python scripts/paper_on_gpu.py --data /work/shared/data/cifar10-jpeg.tar.gz --budget 575 \
        --networks resnet-14 --report lease.json

and the second, through scripts/gpu-lease.sh, ``--compile reduce-overhead --networks
resnet-32,resnet-56 --seeds 1 --no-measure`` (data/runs/paper/leases/ holds every call's report
and says which version of this script it was).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnlib import data as data_lib  # noqa: E402
from bnlib.bench import bnlib_images_per_s, random_dataset  # noqa: E402
from bnlib.profiles import Plan  # noqa: E402

MODES = ("bn", "all")
OVERHEAD = 1.10  # test evaluation every epoch, checkpoints and the clamping curve, on top of training
STARTUP = 10.0  # seconds for two processes to start CUDA and read the data, per network


class TimeUp(Exception):
    """A run stopped because it would have ended past the lease's deadline."""


def measure(plan: Plan, network: str, mode: str, replicates: int, images: int, compile: str) -> float:
    """Training images/s of ``replicates`` fused copies (all counted), after a warm-up epoch."""
    config = plan.config(network, mode, 0, compile=compile)
    return bnlib_images_per_s(config, random_dataset(images), replicates, warmup=True)


def seconds_for(speeds: dict, network: str, replicates: int, epochs: int, train_images: int, top: int) -> float:
    """Projected wall time of one network's BN and All runs, ``replicates`` seeds each, side by side.

    ``speeds`` were measured with the two modes running at once, as they train, so the pair
    takes as long as its slower run. Seconds per fused step are interpolated linearly between
    1 and ``top`` replicates."""
    longest = 0.0
    for mode in MODES:
        one = train_images / speeds[network, mode, 1]
        full = top * train_images / speeds[network, mode, top]
        per_epoch = one + (full - one) * (replicates - 1) / max(top - 1, 1)
        longest = max(longest, per_epoch * epochs * OVERHEAD)
    return longest


def choose(speeds: dict, networks: list[str], epochs: int, train_images: int, top: int,
           seconds: float) -> tuple[list[str], int]:
    """As many networks as fit (in order), then as many seeds as fit for all of them. When none
    fits on paper, the first network with one seed is tried all the same: the estimate is rough,
    and the deadline guard stops a run that cannot finish after a few epochs."""
    for n in range(len(networks), 0, -1):
        for seeds in range(top, 0, -1):
            if sum(STARTUP + seconds_for(speeds, m, seeds, epochs, train_images, top) for m in networks[:n]) <= seconds:
                return networks[:n], seeds
    return networks[:1], 1


def start_worker(device: str) -> None:
    """Start CUDA in a worker, and hold it a moment so that each worker gets one such task."""
    import torch

    torch.zeros(1, device=device)
    time.sleep(2)


def experiment(plan: Plan, network: str, mode: str, seeds: int, deadline: float, compile: str = "none") -> str:
    """One process: train ``seeds`` fused replicates of one network and mode, with their
    clamping curves (the sweep's own :func:`bnlib.sweep.train_with_curves`).
    Returns "complete", or why the runs stopped early."""
    from bnlib.sweep import train_with_curves

    configs = [plan.config(network, mode, s, compile=compile) for s in range(seeds)]
    dataset = data_lib.load(plan.data_source)
    started = time.time()
    epoch_seconds: list[float] = []

    def guard(row: dict) -> None:  # called once per replicate and epoch
        if row["epoch"] > len(epoch_seconds):
            epoch_seconds.append(row["seconds"])
            if row["epoch"] % 20 == 0 or row["epoch"] == 1:
                print(f"{network} {mode} epoch {row['epoch']}: test accuracy {row['test_accuracy']:.2f}% "
                      f"(seed {configs[0].train.seed}), {row['seconds']:.2f} s/epoch", flush=True)
        per_epoch = sorted(epoch_seconds[-5:])[len(epoch_seconds[-5:]) // 2]  # the first epoch warms up
        if row["epoch"] < plan.n_epochs and time.time() + per_epoch > deadline:
            # Raised before this epoch's checkpoint is written: the run resumes from the one before.
            raise TimeUp(f"{network} {mode}'s next epoch would end past the deadline "
                         f"(stopped after epoch {row['epoch']}; a later lease resumes it)")

    try:
        runs = train_with_curves(configs, plan.store, dataset, on_epoch=guard)
    except TimeUp as stop:
        print(stop, flush=True)
        return f"stopped: {stop}"
    for config, run in zip(configs, runs):
        print(f"{network} {mode} seed {config.train.seed}: {run.status}, test accuracy {run.test_accuracy:.2f}%, "
              f"{time.time() - started:.0f} s", flush=True)
    return "complete" if all(run.status == "complete" for run in runs) else "diverged"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--networks", default="resnet-14,resnet-32,resnet-56,resnet-110")
    parser.add_argument("--data", required=True)
    parser.add_argument("--runs-dir", default=None, help="default: the profile's store")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=None, help="default: the profile's (160 for paper)")
    parser.add_argument("--seeds", type=int, default=None, help="most seeds per experiment (default: the profile's)")
    parser.add_argument("--budget", type=float, required=True, help="seconds from now until every run has ended")
    parser.add_argument("--compile", default="none", choices=["none", "default", "reduce-overhead"],
                        help="torch.compile for measuring and training (reduce-overhead: CUDA graphs, 2.2-2.5x "
                             "faster on the H200, about 30 s to compile each network)")
    parser.add_argument("--probe-images", type=int, default=3840, help="images per speed measurement")
    parser.add_argument("--no-measure", action="store_true",
                        help="plan nothing: train the networks in order with --seeds (default 1) until the "
                             "deadline (saves the compile time of measuring when resuming runs)")
    parser.add_argument("--report", default="lease.json")
    args = parser.parse_args()

    start = time.time()
    deadline = start + args.budget
    plan = Plan.from_parameters(args.profile, data=args.data, device=args.device, epochs=args.epochs,
                                seeds=args.seeds, runs_dir=args.runs_dir)
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    dataset = data_lib.load(plan.data_source)  # decoded once into the cache the processes read
    train_images = dataset.train_x.shape[0]
    report: dict = {"profile": plan.profile.name, "epochs": plan.n_epochs, "compile": args.compile,
                    "data": dataset.describe(),
                    "budget_s": args.budget, "decode_s": round(time.time() - start, 1), "speeds": []}

    top = 1 if args.no_measure and args.seeds is None else plan.n_seeds
    speeds: dict = {}
    # Two worker processes for the whole lease (CUDA starts once in each), one per mode, so
    # speeds are measured as the runs train: BN-only and All side by side on one GPU.
    with ProcessPoolExecutor(len(MODES), mp_context=mp.get_context("spawn")) as pool:
        for future in [pool.submit(start_worker, args.device) for _ in MODES]:
            future.result()
        for network in [] if args.no_measure else networks:
            for r in sorted({1, top}):
                pending = {mode: pool.submit(measure, plan, network, mode, r, args.probe_images, args.compile) for mode in MODES}
                for mode, future in pending.items():
                    speeds[network, mode, r] = future.result()
                    report["speeds"].append({"model": network, "trainable": mode, "replicates": r,
                                             "images_per_s": round(speeds[network, mode, r], 1)})
                    print(f"speed {network} {mode} x{r}: {speeds[network, mode, r]:.0f} images/s", flush=True)
        planned_at = time.time()
        chosen, seeds = (networks, top) if args.no_measure else \
            choose(speeds, networks, plan.n_epochs, train_images, top, deadline - planned_at)
        report.update(measure_s=round(planned_at - start, 1), networks=chosen, seeds=seeds, finished=[],
                      projected_s={m: round(seconds_for(speeds, m, seeds, plan.n_epochs, train_images, top), 1)
                                   for m in chosen if speeds})
        print(f"plan: {chosen} with {seeds} seed(s), {plan.n_epochs} epochs, then the rest while time is left",
              flush=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")

        # The plan's networks first, then the others: what cannot finish now is resumed later.
        for network in chosen + [n for n in networks if n not in chosen]:
            began = time.time()
            pending = {mode: pool.submit(experiment, plan, network, mode, seeds, deadline, args.compile) for mode in MODES}
            outcome = {}
            for mode, future in pending.items():
                try:
                    outcome[mode] = future.result()
                except Exception as error:  # a failure is recorded, and the lease ends well
                    outcome[mode] = f"{type(error).__name__}: {error}"
                    print(f"{network} {mode}: {outcome[mode]}", flush=True)
            report["finished"].append({"model": network, "seconds": round(time.time() - began, 1), **outcome})
            Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
            if set(outcome.values()) != {"complete"} or time.time() + STARTUP > deadline:
                break  # out of time (or failed)
    report["total_s"] = round(time.time() - start, 1)
    Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("networks", "seeds", "projected_s", "finished", "total_s")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
