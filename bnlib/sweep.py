"""``python -m bnlib sweep``: a grid of runs on Ray, skipping what the results store has.

A sweep expands a grid (flags, or a book profile) into run configs, skips the runs already
finished, and trains the rest as Ray tasks: on an embedded local Ray by default (one run per
GPU or a fraction of one, or CPU slots on a machine without a GPU), or on an existing cluster
with ``--address``. Runs are the same configs and folders as ``python -m bnlib train``, so a
chapter reads a sweep's results with no extra step.

Faults: a task whose worker dies or that raises is retried (``--retries`` times) and resumes
from its run's last checkpoint; a diverged run is a result, not a failure, and is not retried.
A killed driver loses nothing: started again, the sweep skips finished runs and resumes
interrupted ones. A per-run lock keeps two processes from ever training the same run at once.

Time limits: with a ``deadline`` the sweep launches no run after it, and each run gets the time
left when it starts and stops at the last epoch boundary that fits (:mod:`bnlib.train`),
checkpoint kept; the counts say how many runs were ``stopped``, and the next sweep resumes them.

Failing fast: a setting that cannot be met is a :class:`ConfigError` within seconds, not a hang:
an address where no Ray head answers (nothing listening, or a server that is not Ray's), ``auto``
with no cluster to find, GPUs or CPUs per run that no node has. The local Ray listens on the
loopback address only, and no Ray process it starts outlives the sweep: it is shut down on
return, on an exception, and on SIGTERM or SIGINT (which raise ``SystemExit`` here, exit status
128 + the signal's number).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from itertools import product
from pathlib import Path
from typing import Any, Callable, Sequence

from . import data as data_lib
from . import results
from .config import ConfigError, RunConfig
from .freezing import mode_identity
from .packs import plan_packs
from .architectures import cost
from .train import RunResult, locate, resolve_device, stored_result, train_pack, validate


def grid(models: Sequence[str], modes: Sequence[str], seeds: int, epochs: int, data: str,
         bn_inits: Sequence[str] = ("uniform",), feature_inits: Sequence[str] = ("he-normal",),
         **fields: Any) -> list[RunConfig]:
    """Every combination of models x modes x initialisations x seeds, each validated."""
    configs = [RunConfig.from_flat(model=m, trainable=t, bn_init=b, feature_init=f, seed=s, epochs=epochs,
                                   data=data, **fields)
               for m, t, b, f, s in product(models, modes, bn_inits, feature_inits, range(seeds))]
    return _checked(configs)


def profile_grid(profile: str, **overrides: Any) -> list[RunConfig]:
    """Every run the book's chapters need in a profile (Figures 1 and 2, Appendices C-E)."""
    from .plan import Plan

    plan = Plan.from_parameters(profile, **overrides)
    # Seed 0 of every network first, cheap networks first: a sweep cut short still has whole
    # figures of one replicate (the sort is stable, so each network keeps the figures' order).
    configs = sorted(plan.all_runs(), key=lambda c: (c.train.seed, cost(c.model.model)))
    return _checked(configs)


def _checked(configs: list[RunConfig]) -> list[RunConfig]:
    if not configs:
        raise ConfigError("the grid expands to zero runs")
    for config in configs:
        validate(config)
    return configs


def _slots(resources: dict[str, float], gpus: float, cpus: float) -> int:
    """How many runs of ``gpus`` GPUs and ``cpus`` CPUs the cluster's ``resources`` hold at once."""
    fits = [resources.get("GPU", 0) / gpus] if gpus else []
    fits += [resources.get("CPU", 0) / cpus] if cpus else []
    return max(1, int(min(fits) + 1e-9)) if fits else 1


def check_address(address: str, timeout: float = 10.0) -> None:
    """Fail fast, with one line, unless a Ray head answers at ``address``, in about ``timeout``
    seconds at most. ``auto`` is resolved as Ray resolves it (``RAY_ADDRESS``, then a head
    started on this machine); ``local`` needs no check.

    A TCP connection proves little (any server accepts one, and Ray's client then retries for
    minutes), so Ray's own client asks the head for its nodes, in a child process killed at
    ``timeout``: a server that is not Ray's never answers, a head that wants a token refuses."""
    if address == "local":
        return
    if address.startswith("ray://"):
        resolved = address  # a Ray Client server
    else:
        from ray._private.services import canonicalize_bootstrap_address

        # What ray.init will connect to: RAY_ADDRESS or a head started here for "auto", and
        # 127.0.0.1 turned into this machine's network address (where Ray expects its head).
        try:
            resolved = canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError) as error:
            if address != "auto":
                raise ConfigError(f"cannot use {address!r} as a Ray cluster's address: {error}") from None
            resolved = None
        if resolved is None:
            raise ConfigError("--address auto: no running Ray cluster found on this machine "
                              "(start one with `ray start --head`, or give its HOST:PORT)")
        if address == "auto":
            from ray._private.authentication.authentication_token_setup import (
                maybe_enable_token_auth_if_token_available)

            # as ray.init does for auto, so that the check and the connection agree on the token
            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    bare = resolved.removeprefix("ray://")
    host, _, port = bare.rpartition(":")
    where = repr(address) if bare == address else f"{address!r} (Ray connects to {bare})"
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=min(timeout, 5.0)):
            pass
    except (OSError, ValueError):
        raise ConfigError(f"cannot reach a Ray cluster at {where}: nothing answers there") from None
    if address.startswith("ray://"):
        return  # a Ray Client server: ray.init's own connection has a deadline
    problem = _ask_head(bare, timeout)
    if problem:
        raise ConfigError(f"cannot reach a Ray cluster at {where}: {problem}")


# Ray's client retries a silent server for minutes and logs as it goes: it runs in a child
# process, which prints one line (nothing when the head answered) and is killed at the deadline.
_PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1]).get_all_node_info(timeout=float(sys.argv[2]))
except Exception as error:
    print(type(error).__name__, str(error).strip().splitlines()[0] if str(error).strip() else "")
"""


def _ask_head(address: str, timeout: float) -> str | None:
    """What is wrong with the Ray head (GCS) at ``host:port``, or None if it answers."""
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, address, str(timeout / 2)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"the server at {address} gave no answer as a Ray head in {timeout:.0f} s (is it Ray's?)"
    answer = done.stdout.strip()
    if done.returncode != 0 and not answer:
        answer = (done.stderr.strip().splitlines() or ["the check failed"])[-1]
    if not answer:
        return None
    if answer.startswith("AuthenticationError"):
        return ("the cluster wants Ray's authentication token: set RAY_AUTH_MODE=token and "
                "RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) as on the cluster's nodes")
    return f"the server at {address} did not answer as a Ray head ({answer[:200]})"


_LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _loopback_only():
    """Start the local Ray on the loopback address: nothing on the network can reach it.

    Ray turns a node IP of 127.0.0.1 into the machine's network address, and its servers then
    listen on every interface, unless clusters are switched off: then the node IP stays
    127.0.0.1 and every server (GCS, raylet, workers, agents) binds to it. The switch is read
    from the environment by each process Ray starts, and by the driver when Ray is imported."""
    from ray._private import ray_constants

    before_env, before = os.environ.get(_LOOPBACK), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_LOOPBACK] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:  # a later ray.init in this process may join a real cluster
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(_LOOPBACK, None)
        else:
            os.environ[_LOOPBACK] = before_env


class _StopOnSignals:
    """Within it, SIGTERM and SIGINT raise ``SystemExit`` so that the sweep's ``finally`` stops
    the Ray it started; the first one only (more, during the shutdown, are ignored). On the way
    out the handlers are put back and the exit status is 128 + the signal's number (Ray turns an
    exception raised in ``ray.wait`` into ``SystemExit(1)``). Nothing changes outside the main
    thread, where Python cannot set handlers."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self.before: dict[int, Any] = {}

    def _stop(self, signum: int, frame: Any) -> None:
        for s in self.SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        self.received = signum
        raise SystemExit(128 + signum)

    def install(self) -> None:
        """Again after ``ray.init``, which puts its own SIGTERM handler in."""
        if threading.current_thread() is threading.main_thread() and self.received is None:
            for s in self.SIGNALS:
                previous = signal.signal(s, self._stop)
                self.before.setdefault(s, previous)

    def __enter__(self) -> "_StopOnSignals":
        self.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self.before.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if self.received is not None:
            raise SystemExit(128 + self.received) from None


@contextlib.contextmanager
def _shutting_down(ray: Any, local: bool):
    """Shut Ray down however the block ends; a local Ray's processes are waited for, so that
    none outlives the sweep (a cluster's stay: this only disconnects from it)."""
    try:
        yield
    finally:
        ray.shutdown(wait_for_processes=local)


def _this_machine() -> list[dict[str, Any]]:
    """The one node a local Ray would have, known before starting it (as Ray counts them)."""
    import torch

    return [{"Alive": True, "Resources": {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}}]


def _resources(nodes: list[dict[str, Any]], address: str | None, gpus_per_run: float | None,
               cpus_per_run: float | None) -> tuple[float, float]:
    """GPUs and CPUs of one run: the defaults, or what was asked for if one node has it.
    ``nodes`` as ``ray.nodes()`` tells of them."""
    nodes = [n["Resources"] for n in nodes if n.get("Alive")]
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    where = f"the Ray cluster at {address}" if address else "this machine"
    gpus = gpus_per_run if gpus_per_run is not None else (1.0 if most_gpus else 0.0)
    if gpus > most_gpus:
        raise ConfigError(f"--gpus-per-run {gpus:g}: {where} has "
                          + (f"at most {most_gpus:g} GPUs on a node" if most_gpus else "no GPU"))
    # Without a GPU one run uses every core of a slot (torch parallelises inside a run).
    cpus = cpus_per_run if cpus_per_run is not None else (
        1.0 if most_gpus else float(min(os.cpu_count() or 1, most_cpus) or 1))
    if cpus > most_cpus:
        raise ConfigError(f"--cpus-per-run {cpus:g}: {where} has at most {most_cpus:g} CPUs on a node")
    return gpus, cpus


def _train_task(flats: list[dict[str, Any]], runs_dir: str, threads: int,
                deadline: float | None = None) -> list[dict[str, Any]]:
    """One pack of runs (a pack of one when unpacked) inside a Ray worker: train (or resume, or
    find) them and report each. ``deadline`` is a ``time.time()``: the pack gets the time left
    when it starts (a cluster's clocks agree)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    started = time.time()
    configs = [RunConfig.from_flat(**flat) for flat in flats]
    time_limit = None if deadline is None else max(0.0, deadline - started)
    runs = train_with_curves(configs, runs_dir, data_lib.load(configs[0].data.data), time_limit=time_limit)
    return [{**run.to_dict(), "seconds": time.time() - started} for run in runs]


def train_with_curves(configs: Sequence[RunConfig], runs_dir: str | Path, dataset: data_lib.Dataset,
                      on_epoch: Callable[[dict[str, float]], None] | None = None,
                      time_limit: float | None = None) -> list[RunResult]:
    """Train a pack of runs (:func:`bnlib.train.train_pack`; one run is a pack of one), then store
    Figure 7's clamping curve of each finished run that needs one, on the training device,
    with the data read once for both. Past ``time_limit`` (seconds) no curve is started: such
    a run is reported ``stopped`` (its training is stored; the next sweep adds the curve)."""
    from .analysis import clamp_curve, clamp_missing

    started = time.monotonic()
    runs = train_pack(configs, runs_dir, dataset=dataset, on_epoch=on_epoch, time_limit=time_limit)
    for config, run in zip(configs, runs):
        if run.status == "complete" and needs_clamping(config) and clamp_missing(run.run_dir):
            if time_limit is not None and time.monotonic() - started >= time_limit:
                run.status = "stopped"
                continue
            clamp_curve(run.run_dir, dataset, device=resolve_device(config.train.device))
    return runs


def needs_clamping(config: RunConfig) -> bool:
    """Figure 7 clamps gamma in the networks of Figure 2 trained in All and BatchNorm-only
    modes (default initialisations, with normalisation)."""
    model, mode = config.model.model, config.train.trainable
    return (mode_identity(mode, model) in (mode_identity("all", model), mode_identity("bn", model))
            and config.model == dataclasses.replace(RunConfig().model, model=model))


def is_finished(configs: Sequence[RunConfig], runs_dir: str | Path) -> list[bool]:
    """Whether each run is finished in ``runs_dir``: trained, and with its clamping curve where
    Figure 7 needs one and the weights to compute it are here (each data source is read once)."""
    from .analysis import clamp_missing

    datasets: dict[str, data_lib.Dataset] = {}
    for config in configs:
        if config.data.data not in datasets:
            datasets[config.data.data] = data_lib.load(config.data.data)
    done = []
    for config in configs:
        folder = locate(config, datasets[config.data.data], runs_dir)
        stored = stored_result(folder)
        if stored is None:
            if (folder / results.RESULT).is_file():
                results.log.warning("%s: a file of this finished run cannot be read; training it repairs it", folder)
            done.append(False)
            continue
        complete = stored.status == "complete"
        to_clamp = complete and needs_clamping(config) and (folder / results.MODEL).is_file()
        done.append(not (to_clamp and clamp_missing(folder)))
    return done


MAX_RETRIES = 10  # more would retry a run that fails for a reason for hours


def _check_fits(configs: Sequence[RunConfig], runs_dir: str | Path, time_limit: float) -> None:
    """:func:`bnlib.train.check_fits` of every run to train, from its stored epochs (before Ray
    starts: a limit that lets some run never progress is refused, status 2)."""
    from .train import check_fits

    datasets: dict[str, data_lib.Dataset] = {}
    for config in configs:
        if config.data.data not in datasets:
            datasets[config.data.data] = data_lib.load(config.data.data)
        folder = locate(config, datasets[config.data.data], runs_dir)
        try:
            stored = results.load_metrics_of(folder).to_dict("records")
        except results.Unreadable:
            continue  # its checkpoint decides where it resumes; nothing measured to go by
        check_fits(folder.name, stored, time_limit)


def check_log(log: str | Path) -> None:
    """A sweep's ``--log`` must be a file it can append to, checked before the first run (not
    after hours of training): its folder exists and is writable, and it is no folder itself."""
    path = Path(log)
    if path.is_dir():
        raise ConfigError(f"--log {str(log)!r} is a folder, not a file")
    if not path.parent.is_dir():
        raise ConfigError(f"--log {str(log)!r}: its folder {str(path.parent)!r} does not exist")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise ConfigError(f"--log {str(log)!r} cannot be written")


def _not_started(n: int) -> str:
    return f"time limit: {n} run{'' if n == 1 else 's'} not started"


def _reason(error: BaseException) -> str:
    """One line on why a task failed: the run's own exception where Ray wraps one."""
    cause = getattr(error, "cause", None) or error
    first = (str(cause).strip().splitlines() or [""])[0][:200]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


def report_line(config: RunConfig, out: dict[str, Any]) -> str:
    """The line a sweep prints for a run its task returned (:func:`_train_task`'s dict)."""
    t = config.train
    head = f"{config.model.model} {t.trainable} seed {t.seed}: {out['status']}"
    if out["status"] == "stopped":
        head += f" by the time limit after epoch {out['epochs_completed']} of {t.epochs}"
        if out["epochs_completed"] == t.epochs:
            head += " (Figure 7's clamping curve left for the next sweep)"
    accuracy = "no epoch trained" if out["test_accuracy"] is None else f"test accuracy {out['test_accuracy']:.2f}%"
    return f"{head}, {accuracy}, {out['seconds']:.0f} s"


def run(configs: Sequence[RunConfig], runs_dir: str | Path, *, address: str | None = None,
        gpus_per_run: float | None = None, cpus_per_run: float | None = None, retries: int = 2,
        progress: bool = True, log: str | Path | None = None, deadline: float | None = None,
        pack: int | None = None) -> dict[str, Any]:
    """Train every config not yet finished in ``runs_dir`` on Ray; return the counts. A line per
    finished or stopped run goes to stdout and, if ``log`` is given, is appended to that file.

    ``pack``: runs of one network that differ in seed, mode or init train together as one fused
    network (:mod:`bnlib.packs`), up to ``pack`` per Ray task; 1 trains each run alone. By
    default packs of 8 where runs get GPUs, and single runs on CPUs (where a pack's one larger
    step gains little over 2-16 threads of one run).

    ``deadline`` (a ``time.time()``): no run is launched after it, and running ones stop at
    their last epoch boundary before it. ``stopped`` counts the runs it cut short or kept from
    starting: 0 means the grid is done (but for ``failed`` runs)."""
    import ray
    from tqdm import tqdm

    given, runs_dir = str(runs_dir), str(Path(runs_dir).resolve())  # workers need the absolute path
    if not (isinstance(retries, int) and 0 <= retries <= MAX_RETRIES):  # -1 would retry for ever
        raise ConfigError(f"retries must be a whole number in 0..{MAX_RETRIES}, got {retries!r}")
    if log:
        check_log(log)  # before the first run, not after it
    if address:
        check_address(address)  # before the data is read: a wrong address is told at once
    finished = is_finished(configs, runs_dir)
    todo = [c for c, done in zip(configs, finished) if not done]  # what is finished needs no worker
    counts = {"trained": 0, "skipped": sum(finished), "failed": 0, "diverged": 0, "stopped": 0,
              "runs_dir": given}  # as given: a log of the summary names no machine's path

    def say(line: str) -> None:
        print(line, flush=True)  # a log file sees each run as it finishes
        if log:
            # opened for each line: the log is a committed file, and a git command that
            # rewrites it (checkout, stash) would leave a file held open writing to nowhere
            with open(log, "a") as f:
                f.write(line + "\n")

    if not todo:
        return counts
    if deadline is not None and time.time() >= deadline:
        counts["stopped"] = len(todo)
        say(_not_started(len(todo)))
        return counts
    if deadline is not None:  # a run whose measured epoch exceeds the whole limit never progresses
        _check_fits(todo, runs_dir, deadline - time.time())

    if not address:  # what this machine cannot give is told before Ray starts
        _resources(_this_machine(), address, gpus_per_run, cpus_per_run)
    failed: list[str] = []
    # installed before Ray starts: a signal during its start-up stops it too
    with _StopOnSignals() as signals, _shutting_down(ray, local=not address):
        if address:
            init = contextlib.nullcontext()
            options: dict[str, Any] = {}
        else:
            # "local", not None: a new Ray of our own even if RAY_ADDRESS names a cluster
            init = _loopback_only()
            options = {"num_cpus": os.cpu_count(), "_node_ip_address": "127.0.0.1"}
        with init:
            try:
                ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                         configure_logging=False, **options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                if not address:
                    raise
                detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {detail}") from None
        signals.install()  # ray.init replaced the SIGTERM handler with its own
        gpus, cpus = _resources(ray.nodes(), address, gpus_per_run, cpus_per_run)
        task = ray.remote(_train_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=retries,
                                               retry_exceptions=True)
        size = pack if pack is not None else (8 if gpus else 1)
        waiting = list(reversed(plan_packs(todo, max_runs=size)))  # popped from the end: the grid's order
        pending: dict = {}
        bar = tqdm(total=len(todo), desc="sweep", file=sys.stderr, disable=not progress)
        while pending or waiting:
            # Launched as slots free up, not all at once, so that none starts after the deadline
            # (the slots are counted again each time: a cluster may grow).
            while waiting and len(pending) < _slots(ray.cluster_resources(), gpus, cpus):
                if deadline is not None and time.time() >= deadline:
                    left = sum(map(len, waiting))
                    counts["stopped"] += left
                    with tqdm.external_write_mode(file=sys.stdout):
                        say(_not_started(left))
                    bar.update(left)
                    waiting = []
                    break
                unit = waiting.pop()
                pending[task.remote([c.flat() for c in unit], runs_dir, int(cpus) if not gpus else 0, deadline)] = unit
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                unit = pending.pop(ref)
                try:
                    outs = ray.get(ref)
                except Exception as error:  # retries used up: failed runs, the sweep goes on
                    outs = [None] * len(unit)
                    reason = _reason(error)
                for config, out in zip(unit, outs):
                    t = config.train
                    if out is None:
                        counts["failed"] += 1
                        line = f"FAILED {config.model.model} {t.trainable} seed {t.seed}: {reason}"
                        failed.append(line)
                    else:
                        counts["stopped" if out["status"] == "stopped" else "trained"] += 1
                        counts["diverged"] += out["status"] == "diverged"
                        line = report_line(config, out)
                    with tqdm.external_write_mode(file=sys.stdout):  # the bar steps aside for the line
                        say(line)
                bar.update(len(unit))
                bar.set_postfix(done=counts["trained"], failed=counts["failed"],
                                left=sum(map(len, pending.values())) + sum(map(len, waiting)))
        bar.close()
        if failed:  # named again at the end, where a long sweep's log is read first
            say(f"{len(failed)} run{'' if len(failed) == 1 else 's'} failed after "
                f"{retries} retr{'y' if retries == 1 else 'ies'}; the next sweep tries again:")
            for line in failed:
                say(f"  {line}")
    return counts
