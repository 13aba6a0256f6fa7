"""Sweeps on an embedded local Ray: skip finished runs, survive a killed driver, refuse bad input
fast, leave no Ray process behind, listen on the loopback address only; and on a Ray head started
here (token authentication on), a killed worker's run resumes from its checkpoint."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from bnlib import ConfigError, RunConfig, analysis, results
from bnlib import sweep as bnlib_sweep
from bnlib.architectures import Network

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("ray")


def sweep(*args, runs, env=None, **popen):
    command = [sys.executable, "-m", "bnlib", "sweep", "--data", "synthetic", "--runs-dir", str(runs),
               "--no-progress", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled", **(env or {})}
    if popen:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **popen)
    return subprocess.run(command, env=env, capture_output=True, text=True)


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


MARK = "BNLIB_TEST_MARK"  # set in a test's processes, inherited by every Ray process they start
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def marked(mark: str, session: int | None = None) -> list[int]:
    """The processes whose environment carries ``BNLIB_TEST_MARK=mark`` or, with ``session``,
    that belong to that session: Ray's agents write their process title over their environment,
    but keep the session of the process a test started with ``start_new_session=True``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if f"{MARK}={mark}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") or (
                    session is not None and int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
                    == session):
                found.append(int(pid))
        except OSError:  # gone, or not ours to read
            pass
    return found


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def gone(mark: str, session: int | None = None, seconds: float = 15) -> list[int]:
    """Waits for the marked processes to end; returns those still alive after ``seconds``."""
    deadline = time.time() + seconds
    while (alive := marked(mark, session)) and time.time() < deadline:  # a zombie's environment reads empty
        time.sleep(0.2)
    return [f"{p} {command(p)[:80]}" for p in alive]


def alone(*args, runs, env=None):
    """A sweep run to its end in a session of its own; returns it and that session's id."""
    driver = sweep(*args, runs=runs, env=env, start_new_session=True)
    out, err = driver.communicate(timeout=600)
    return subprocess.CompletedProcess(driver.args, driver.returncode, out, err), driver.pid


def listening(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of each listening TCP socket the processes hold (/proc/net/tcp{,6})."""
    owner = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    owner[link[8:-1]] = pid
        except OSError:
            pass
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in owner:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((owner[fields[9]], socket.inet_ntop(family, raw), int(port, 16)))
    return found


def whole_curves(runs: Path) -> int:
    """Runs whose Figure 7 clamping curve is complete (it is stored an evaluation at a time)."""
    from bnlib.analysis import clamp_missing

    return sum(not clamp_missing(p.parent) for p in runs.glob("*/clamping.csv"))


def finishes(runs: Path) -> dict[str, int]:
    return {p.parent.name: p.read_text().count(" finish ") for p in runs.glob("*/events.log")}


def test_smoke_grid_then_nothing_to_do(tmp_path):
    runs = tmp_path / "runs"
    planned = sweep("--models", "resnet-8", "--trainable", "bn,bn+shortcut+output", "--seeds", "2", "--epochs", "1",
                    "--dry-run", runs=runs)
    assert planned.returncode == 0 and last_json(planned.stdout) == {"runs": 4, "done": 0, "todo": 4}
    assert planned.stdout.count("todo resnet-8") == 4 and not runs.exists()  # a dry run trains and writes nothing
    late = sweep("--models", "resnet-8", "--trainable", "bn,bn+shortcut+output", "--seeds", "2", "--epochs", "1",
                 "--time-limit", "0s", runs=runs)
    assert late.returncode == 3, late.stderr[-2000:]  # out of time: nothing launched, the grid is not done
    assert last_json(late.stdout) | {"runs_dir": None} == {"trained": 0, "skipped": 0, "failed": 0, "diverged": 0,
                                                            "stopped": 4, "runs_dir": None}
    log = tmp_path / "sweep.log"
    log.write_text("--- started ---\n")
    first = sweep("--models", "resnet-8", "--trainable", "bn,bn+shortcut+output", "--seeds", "2", "--epochs", "1",
                  "--log", str(log), "--time-limit", "1h", runs=runs)  # a limit that fits: the grid is done
    assert first.returncode == 0, first.stderr[-2000:]
    assert last_json(first.stdout) | {"runs_dir": None} == {"trained": 4, "skipped": 0, "failed": 0, "diverged": 0,
                                                             "stopped": 0, "runs_dir": None}
    assert first.stdout.count("test accuracy") == 4  # a line per finished run
    lines = log.read_text().splitlines()  # appended to the log, after what it held
    assert lines[0] == "--- started ---" and lines[1:] == [l for l in first.stdout.splitlines() if "test accuracy" in l]
    table = results.load(runs)
    assert len(table) == 4 and set(table["status"]) == {"complete"}
    assert set(table["trainable"]) == {"bn", "bn,shortcut,output"}
    clamped = {t for t, d in zip(table["trainable"], table["run_dir"]) if (Path(d) / "clamping.csv").is_file()}
    assert clamped == {"bn"}  # Figure 7's curve is stored with each All / BatchNorm-only run

    second = sweep("--models", "resnet-8", "--trainable", "bn,bn+shortcut+output", "--seeds", "2", "--epochs", "1",
                   runs=runs)
    assert second.returncode == 0
    assert last_json(second.stdout)["trained"] == 0 and last_json(second.stdout)["skipped"] == 4
    done = sweep("--models", "resnet-8", "--trainable", "bn,bn+shortcut+output", "--seeds", "2", "--epochs", "1",
                 "--dry-run", runs=runs)
    assert last_json(done.stdout) == {"runs": 4, "done": 4, "todo": 0}
    assert set(finishes(runs).values()) == {1}


def test_killed_driver_restarts_and_every_run_is_done_once(tmp_path):
    runs = tmp_path / "runs"
    args = ("--models", "resnet-8", "--trainable", "bn,all", "--epochs", "2")  # one run at a time
    driver = sweep(*args, runs=runs, start_new_session=True)
    deadline = time.time() + 300
    # a bn/all run is done when its Figure 7 clamping curve is stored whole (after result.json)
    while not whole_curves(runs) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    driver.wait()
    done_before = whole_curves(runs)
    assert done_before == 1, "the first sweep should be killed midway"

    again = sweep(*args, runs=runs)
    assert again.returncode == 0, again.stderr[-2000:]
    counts = last_json(again.stdout)
    assert counts["skipped"] == 1 and counts["trained"] == 1 and counts["failed"] == 0
    assert finishes(runs) and set(finishes(runs).values()) == {1}  # no run finished twice
    table = results.load(runs)
    assert len(table) == 2 and set(table["status"]) == {"complete"} and set(table["epochs_completed"]) == {2}
    assert whole_curves(runs) == 2


@pytest.mark.parametrize("args, words", [
    (("--models", "resnet-7"), "unknown model"),
    (("--trainable", "bn,weights"), "unknown trainable part"),
    (("--seeds", "0"), "zero runs"),
    (("--address", "127.0.0.1:1", "--epochs", "1"), "cannot reach"),
    # more GPUs than any node has (none here): Ray would wait for them forever
    (("--gpus-per-run", "64", "--epochs", "1"), "--gpus-per-run 64"),
    (("--cpus-per-run", "4096", "--epochs", "1"), "--cpus-per-run 4096"),
])
def test_bad_input_exits_2_and_starts_nothing(args, words, tmp_path):
    runs = tmp_path / "runs"
    mark = uuid.uuid4().hex
    started = time.monotonic()
    done, session = alone(*args, runs=runs, env={MARK: mark})
    assert done.returncode == 2 and words in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and not runs.exists()
    assert time.monotonic() - started < 30
    assert gone(mark, session) == []  # the Ray started to find out that the setting cannot be met is stopped


def test_an_address_where_a_server_is_not_ray_fails_in_seconds(tmp_path):
    """A TCP server that accepts and never speaks: Ray's client alone would retry for minutes.
    On the loopback address, which Ray keeps as it is with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0."""
    server = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.extend(iter(lambda: server.accept()[0], None)), daemon=True).start()
    started = time.monotonic()
    done = sweep("--address", f"127.0.0.1:{server.getsockname()[1]}", "--epochs", "1", runs=tmp_path / "runs",
                 env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    assert time.monotonic() - started < 30
    assert done.returncode == 2 and "gave no answer as a Ray head" in done.stderr, done.stderr[-2000:]
    assert held  # it did connect: the TCP check alone would have passed
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
    server.close()


def test_address_auto_without_a_cluster_is_one_line(monkeypatch, tmp_path, capsys):
    """``auto`` finds a head started on this machine; with none (nothing listed in Ray's temp
    folder, no Ray process: this machine may run others, hidden here) it is bad input."""
    import ray._private.services as services

    from bnlib import cli

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: frozenset())
    assert cli.main(["sweep", "--address", "auto", "--epochs", "1", "--data", "synthetic",
                     "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("bnlib: error: --address auto: no running Ray cluster") and error.count("\n") == 1


def test_resources_of_a_run_must_fit_on_one_node():
    from bnlib.errors import ConfigError
    from bnlib.sweep import _resources

    def Cluster(*nodes, dead=()):  # what ray.nodes() tells of each node
        return [{"Alive": True, "Resources": n} for n in nodes] + [{"Alive": False, "Resources": n} for n in dead]

    gpus = Cluster({"CPU": 8.0, "GPU": 2.0}, {"CPU": 4.0}, dead=[{"CPU": 64.0, "GPU": 8.0}])
    assert _resources(gpus, "head:6379", None, None) == (1.0, 1.0)  # a GPU each, as on one GPU server
    assert _resources(gpus, "head:6379", 0.25, None) == (0.25, 1.0)
    with pytest.raises(ConfigError, match="at most 2 GPUs on a node"):
        _resources(gpus, "head:6379", 4, None)  # a dead node's GPUs do not count
    with pytest.raises(ConfigError, match="--cpus-per-run 16: the Ray cluster at head:6379 has at most 8 CPUs"):
        _resources(gpus, "head:6379", None, 16)
    cpus = Cluster({"CPU": 1.0})
    assert _resources(cpus, None, None, None) == (0.0, 1.0)  # every core of the largest node, at most
    with pytest.raises(ConfigError, match="--gpus-per-run 1: this machine has no GPU"):
        _resources(cpus, None, 1, None)


class BrokenFamily:
    """Networks ``broken-N``: ResNet-N in every check, raising in training (a run that fails)."""

    name = "broken"
    forms = "broken-N"

    def _resnet(self, network):
        from bnlib.architectures.resnet import FAMILY

        return FAMILY, FAMILY.parse(network.name.replace("broken-", "resnet-"))

    def parse(self, name):
        if not name.startswith("broken-"):
            return None
        return Network(name, "broken", 1, 1) if self._resnet(Network(name, "broken", 1, 1))[1] else None

    def build(self, network, *, normalize, num_classes, runs):
        family, resnet = self._resnet(network)
        model = family.build(resnet, normalize=normalize, num_classes=num_classes, runs=runs)

        def fail(module, inputs):
            raise RuntimeError("this network fails in training")

        model.register_forward_pre_hook(fail)
        return model

    def cost(self, network):
        return 1.0


BROKEN = BrokenFamily()


def test_failed_runs_are_named_at_the_end_and_exit_1(tmp_path):
    mark = uuid.uuid4().hex
    done, session = alone("--models", "broken-8", "--trainable", "bn", "--seeds", "2", "--epochs", "1",
                          "--retries", "0", runs=tmp_path / "runs",
                          env={MARK: mark, "BNLIB_ARCHITECTURES": "test_sweep:BROKEN",
                               "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])})
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    failed = [f"FAILED broken-8 bn seed {s}" for s in (0, 1)]
    assert sum(l.startswith(tuple(failed)) for l in lines) == 2  # as each run fails
    assert lines[-4].startswith("2 runs failed after 0 retries")  # and again at the end
    assert sorted(l.strip().split(":")[0] for l in lines[-3:-1]) == failed
    assert last_json(done.stdout)["failed"] == 2
    assert gone(mark, session) == []  # a normal exit stops the local Ray


def test_local_ray_listens_on_loopback_only_and_stops_on_sigterm(tmp_path):
    runs = tmp_path / "runs"
    mark = uuid.uuid4().hex
    driver = sweep("--models", "resnet-8", "--trainable", "bn+output", "--epochs", "3", runs=runs,
                   env={MARK: mark}, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not any(command(p).startswith("ray::_train_task") for p in marked(mark, driver.pid)):
            assert time.time() < deadline and driver.poll() is None, driver.communicate()[1][-2000:]
            time.sleep(0.2)
        sockets = listening(marked(mark, driver.pid))
        assert sockets and all(address in LOOPBACK for _, address, _ in sockets), sockets
    finally:
        driver.send_signal(signal.SIGTERM)  # the driver only: it must stop the Ray it started
        _, err = driver.communicate(timeout=120)
    assert driver.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert gone(mark, driver.pid) == []


def test_a_task_started_past_the_deadline_stops_and_a_late_curve_waits_for_the_next_sweep(tmp_path):
    """What each Ray task does with the time left (the tasks run here in-process)."""
    from bnlib import RunConfig, data
    from bnlib.sweep import _slots, _train_task, is_finished, report_line, train_with_curves

    runs = tmp_path / "runs"
    config = RunConfig.from_flat(model="resnet-8", trainable="bn", epochs=1, data="synthetic")
    [out] = _train_task([config.flat()], str(runs), 0, deadline=time.time() - 1)  # a pack of one
    assert (out["status"], out["epochs_completed"], out["test_accuracy"]) == ("stopped", 0, None)

    dataset = data.load("synthetic")
    [trained] = train_with_curves([config], runs, dataset, time_limit=3600)  # trains, then computes the curve
    assert trained.status == "complete" and (Path(trained.run_dir) / "clamping.csv").is_file()
    (Path(trained.run_dir) / "clamping.csv").unlink()  # as if the limit had come right after training
    [late] = train_with_curves([config], runs, dataset, time_limit=0)
    assert late.status == "stopped" and not (Path(late.run_dir) / "clamping.csv").exists()
    assert is_finished([config], runs) == [False]  # the next sweep adds the curve
    [again] = train_with_curves([config], runs, dataset)
    assert again.status == "complete" and again.cached and is_finished([config], runs) == [True]

    assert _slots({"CPU": 16.0, "GPU": 2.0}, 0.5, 1.0) == 4 and _slots({"CPU": 2.0}, 0.0, 2.0) == 1
    assert _slots({"CPU": 2.0}, 0.0, 4.0) == 1  # a run that needs more than there is still gets launched
    assert report_line(config, out) == "resnet-8 bn seed 0: stopped by the time limit after epoch 0 of 1, " \
        "no epoch trained, " + f"{out['seconds']:.0f} s"
    assert "complete, test accuracy" in report_line(config, {**again.to_dict(), "seconds": 1.0})


def test_only_figure2_all_and_bn_runs_get_a_clamping_curve():
    from bnlib import RunConfig
    from bnlib.sweep import needs_clamping

    config = RunConfig.from_flat
    assert all(needs_clamping(config(trainable=t)) for t in ("bn", "gamma,beta", "all"))
    assert not any(needs_clamping(c) for c in (config(trainable="bn", bn_init="ones"), config(trainable="bn,shortcut,output"),
                                              config(trainable="bn", normalize=False), config(trainable="all,-bn"),
                                              config(trainable="bn", feature_init="binary")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_killed_worker_on_a_ray_head_resumes_its_run_from_the_checkpoint(tmp_path):
    """The README's cluster recipe on one machine: a head with token authentication, on the
    loopback address (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray from moving 127.0.0.1 to
    the network address), every port chosen free (another Ray may run here). The worker training
    the run is killed after its first checkpoint; Ray's retry resumes it, to the same result."""
    import torch

    from bnlib import RunConfig
    from bnlib.train import train

    temp = Path(tempfile.mkdtemp(prefix="bnray-", dir="/tmp"))  # a short path: Ray's sockets live in it
    token = temp / "token"
    token.write_text(secrets.token_hex(32))
    mark = uuid.uuid4().hex
    ray_env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    port = free_port()
    ports = [f"--{name}={free_port()}" for name in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                    "metrics-export-port", "runtime-env-agent-port")]
    runs = tmp_path / "runs"
    # in a session of its own: every process of the head keeps it, whatever its title
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
                             "--node-ip-address=127.0.0.1", f"--port={port}", "--include-dashboard=false", *ports,
                             "--num-cpus=2", f"--temp-dir={temp}", "--disable-usage-stats"],
                            env={**os.environ, **ray_env, MARK: mark}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _, err = head.communicate(timeout=120)
        assert head.returncode == 0, err[-2000:]

        # without the token the head refuses, and the sweep says so in one line
        refused = sweep("--address", f"127.0.0.1:{port}", "--epochs", "1", runs=runs,
                        env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
        assert refused.returncode == 2 and "authentication token" in refused.stderr, refused.stderr[-2000:]
        assert len(refused.stderr.strip().splitlines()) == 1

        args = ("--models", "resnet-8", "--trainable", "bn+output", "--epochs", "3", "--address", f"127.0.0.1:{port}")
        driver = sweep(*args, runs=runs, env={**ray_env, MARK: f"{mark}-driver"}, start_new_session=True)
        deadline = time.time() + 240
        while not list(runs.glob("*/checkpoint.pt")):  # the first epoch is stored
            assert time.time() < deadline and driver.poll() is None, driver.communicate()[1][-2000:]
            time.sleep(0.1)
        [worker] = [p for p in marked(mark, head.pid) if command(p).startswith("ray::_train_task")]
        os.kill(worker, signal.SIGKILL)
        out, err = driver.communicate(timeout=300)
        assert driver.returncode == 0, err[-2000:]
        assert last_json(out)["trained"] == 1 and last_json(out)["failed"] == 0
        assert gone(f"{mark}-driver", driver.pid) == []  # a driver joining a cluster leaves nothing behind
    finally:
        for pid in marked(mark, head.pid):  # the head: every process of it, found by mark and session
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left = gone(mark, head.pid)
        shutil.rmtree(temp, ignore_errors=True)
    assert left == []

    [folder] = runs.glob("resnet-8_*")
    starts = [int(l.split(" start epoch=")[1].split()[0]) for l in (folder / "events.log").read_text().splitlines()
              if " start epoch=" in l]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] >= 1  # resumed, not started again

    # the same run trained alone, uninterrupted, with the threads the task used
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        reference = train(RunConfig.from_flat(model="resnet-8", trainable="bn,output", epochs=3, data="synthetic"),
                          tmp_path / "alone")
    finally:
        torch.set_num_threads(threads)
    columns = ["epoch", "train_loss", "test_accuracy"]
    assert results.load_metrics_of(folder)[columns].equals(results.load_metrics_of(reference.run_dir)[columns])
    resumed, uninterrupted = (analysis.load_weights(f) for f in (folder, reference.run_dir))
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


def test_a_dry_run_lists_a_damaged_finished_run_as_to_do(tmp_path, capsys, caplog):
    """One unreadable file never stops a sweep: the run is listed to do (training it repairs it)."""
    from bnlib import RunConfig
    from bnlib.cli import main
    from bnlib.train import train

    result = train(RunConfig.from_flat(model="resnet-8", trainable="bn", epochs=1, data="synthetic"), tmp_path)
    (Path(result.run_dir) / results.RESULT).write_text("{cut sh")
    args = ["sweep", "--models", "resnet-8", "--trainable", "bn", "--epochs", "1", "--data", "synthetic",
            "--runs-dir", str(tmp_path), "--dry-run"]
    with caplog.at_level("WARNING", logger="bnlib"):
        assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("todo resnet-8") and json.loads(out[-1]) == {"runs": 1, "done": 0, "todo": 1}
    assert any(str(result.run_dir) in r.getMessage() for r in caplog.records)


def test_the_scale_experiments_by_name_make_their_copies_and_refuse_grid_flags(tmp_path, capsys, monkeypatch):
    """``--experiment`` sweeps chapter 9's experiments as bnlib.experiments defines them: the
    ladder in its order, and the price of JPEG on copies it re-encodes into the data cache."""
    from bnlib.cli import main
    from bnlib.experiments import JPEG_QUALITIES, scale_ladder
    from bnlib.reencode import default_destination

    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "cache"))  # a data cache of its own
    base = ["sweep", "--data", "synthetic", "--runs-dir", str(tmp_path / "runs"), "--dry-run"]
    assert main([*base, "--experiment", "scale-ladder"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    expected = [f"todo {c.model.model} trainable={c.train.trainable} " for c in scale_ladder("synthetic")]
    assert [line.split("bn_init")[0] for line in out[:-1]] == expected and json.loads(out[-1])["todo"] == 15
    copies = [default_destination("synthetic", q) for q in JPEG_QUALITIES]
    assert not any(path.exists() for path in copies)
    assert main([*base, "--experiment", "jpeg-price"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert all(path.is_file() for path in copies) and json.loads(out[-1]) == {"runs": 4, "done": 0, "todo": 4}
    assert main([*base, "--experiment", "jpeg-price", "--epochs", "2"]) == 2  # the experiment fixes its runs
    assert "drop --epochs" in capsys.readouterr().err


def test_a_packed_sweep_stores_each_run_as_if_trained_alone(tmp_path):
    """--pack 4: the four runs of one network train as one pack on one worker; each is stored
    at its own address with its own files, and a second sweep finds them all."""
    grid = ["--models", "resnet-8", "--trainable", "bn,none,bn+shortcut+output", "--seeds", "2", "--epochs", "1"]
    out = sweep(*grid, "--pack", "4", runs=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = last_json(out.stdout)
    assert counts["trained"] == 6 and counts["failed"] == 0
    table = results.load(tmp_path)
    assert len(table) == 6 and set(table["status"]) == {"complete"}
    starts = [line for p in tmp_path.glob("*/events.log") for line in p.read_text().splitlines() if " start " in line]
    assert sorted(int(line.split("runs=")[1].split()[0]) for line in starts) == [3] * 6  # two packs of 3
    again = sweep(*grid, "--pack", "4", runs=tmp_path)
    assert last_json(again.stdout)["skipped"] == 6
    assert sweep(*grid, "--pack", "0", runs=tmp_path).returncode == 2


@pytest.mark.parametrize("retries", ["-1", "11", "many"])
def test_retries_are_bounded_before_anything_starts(retries, tmp_path, capsys):
    from bnlib.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--models", "resnet-8", "--epochs", "1", "--data", "synthetic", "--retries", retries,
              "--runs-dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="retries"):
        bnlib_sweep.run([], tmp_path / "runs", retries=-1)
    assert not (tmp_path / "runs").exists()


def test_a_log_in_a_missing_folder_is_refused_before_the_first_run(tmp_path, capsys):
    from bnlib.cli import main

    assert main(["sweep", "--models", "resnet-8", "--epochs", "1", "--data", "synthetic", "--runs-dir",
                 str(tmp_path / "runs"), "--log", str(tmp_path / "no" / "such" / "sweep.log")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="folder"):
        bnlib_sweep.check_log(tmp_path)


def test_a_time_limit_shorter_than_a_runs_measured_epoch_is_refused(tmp_path):
    """Such a run stops before its next epoch at every call, exit 3 for ever: refused (exit 2)
    before Ray starts. A run with nothing measured trains its first epoch."""
    import numpy as np
    from stores import write_run

    c = RunConfig.from_flat(model="resnet-8", trainable="bn", epochs=2, data="synthetic")
    write_run(tmp_path, model="resnet-8", trainable="bn", seed=0, accuracy=30.0, epochs=2,
              rng=np.random.default_rng(0))  # its epochs took 5 to 20 s
    with pytest.raises(ConfigError, match="shorter than one epoch"):
        bnlib_sweep._check_fits([c.replace(epochs=2)], tmp_path, 1.0)
    bnlib_sweep._check_fits([c.replace(epochs=2)], tmp_path, 60.0)
    bnlib_sweep._check_fits([c.replace(seed=1)], tmp_path, 1.0)  # nothing measured: its first epoch runs
