"""``python -m bnlib estimate``: timed steps projected onto a profile's grids, each run counted once."""

import contextlib
import io
import json
import math

import pytest

from bnlib import bench, estimate as estimate_lib
from bnlib.cli import main
from bnlib.estimate import Timing
from bnlib.experiments import PROFILES, Experiments

KEYS = {"profile", "device", "hardware", "torch_version", "pack", "hours", "experiments", "networks"}
NETWORK_KEYS = {"seconds_per_epoch", "images_per_s", "fraction_of_matmul_rate", "runs"}


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["estimate", *args])
    return code, out.getvalue(), err.getvalue()


def project(result, per_pack: bool) -> float:
    """The whole profile's hours from the JSON's per-network numbers: per run, or per pack."""
    seconds = 0.0
    for n in result["networks"].values():
        for kind, per_run in n["seconds_per_epoch"].items():
            seconds += per_run * (n["packs"][kind] * n["pack_runs"][kind] if per_pack else n["runs"][kind])
    return seconds * result["epochs"] / 3600


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """One real measurement of the smoke profile's ResNet-8 (the other networks extrapolated),
    alone and in packs of 2, on this machine's CPU."""
    out = tmp_path_factory.mktemp("estimates") / "estimates.jsonl"
    done = {}
    for pack in (1, 2):
        code, stdout, stderr = run("--profile", "smoke", "--device", "cpu", "--steps", "1", "--networks", "resnet-8",
                                   "--pack", str(pack), "--out", str(out))
        assert code == 0, stderr
        done[pack] = (json.loads(stdout.strip().splitlines()[-1]), stdout)
    return done, out


def test_json_last_line_and_table(measured):
    result, stdout = measured[0][1]
    assert KEYS <= set(result) and result["profile"] == "smoke" and result["pack"] == 1
    assert result["hours"] > 0 and result["device"] == "cpu"
    assert set(result["experiments"]) == set(estimate_lib.EXPERIMENTS)
    plan = Experiments(PROFILES["smoke"])
    assert set(result["networks"]) == set(plan.networks())
    for name, n in result["networks"].items():
        assert NETWORK_KEYS <= set(n)
        assert set(n["runs"]) == {"conv-frozen", "conv-trained"}
        assert all(s > 0 for s in n["seconds_per_epoch"].values())
        assert n["extrapolated"] == (name != "resnet-8")
    assert all(0 < f for f in result["networks"]["resnet-8"]["fraction_of_matmul_rate"].values())
    assert "extrapolated" in stdout and "resnet-14*" in stdout and "whole profile" in stdout


def test_whole_profile_counts_each_run_once(measured):
    result = measured[0][1][0]
    assert sum(sum(n["runs"].values()) for n in result["networks"].values()) == len(
        Experiments(PROFILES["smoke"]).all_runs()) == result["runs"]
    assert result["hours"] == pytest.approx(project(result, per_pack=False), rel=1e-3)
    # Figures 1 and 2 and Appendix D share their All and BatchNorm-only runs.
    assert result["hours"] < sum(result["experiments"].values())


def test_packs_are_counted_per_pack(measured):
    result = measured[0][2][0]
    assert result["pack"] == 2
    resnet8 = result["networks"]["resnet-8"]
    assert resnet8["pack_runs"] == {"conv-trained": 2, "conv-frozen": 2}
    assert resnet8["packs"] == {k: math.ceil(v / 2) for k, v in resnet8["runs"].items()}
    assert result["hours"] == pytest.approx(project(result, per_pack=True), rel=1e-3)
    assert result["hours"] != pytest.approx(project(result, per_pack=False), rel=1e-3)


def test_out_appends_one_line_per_call(measured):
    lines = measured[1].read_text().splitlines()
    assert [json.loads(line)["pack"] for line in lines] == [1, 2]


@pytest.fixture
def instant(monkeypatch):
    """Measurements replaced by a fixed time per run: the accounting alone, in milliseconds."""
    monkeypatch.setattr(estimate_lib, "measure",
                        lambda configs, device, steps, test_images: Timing(len(configs), 0.5, 0.001, 1e9))
    monkeypatch.setattr(bench, "matmul_flops_per_s", lambda device: 1e12)


def test_projection_of_unique_runs(instant):
    result = estimate_lib.estimate("smoke", device="cpu", steps=1)
    plan = Experiments(PROFILES["smoke"])
    epoch = 1024 / 128 * 0.5 + 256 * 0.001  # 8 steps and 256 test images of the synthetic set
    assert result["hours"] == pytest.approx(len(plan.all_runs()) * epoch / 3600, rel=1e-5)
    assert result["experiments"]["figure2"] == pytest.approx(len(plan.figure2()) * epoch / 3600, rel=1e-5)
    assert not any(n["extrapolated"] for n in result["networks"].values())
    packed = estimate_lib.estimate("smoke", device="cpu", steps=1, pack=2)
    assert packed["hours"] == pytest.approx(project(packed, per_pack=True), rel=1e-5)
    assert packed["hours"] < result["hours"]  # a pack of 2 measured at the time of one run


def test_print_only_by_default(instant, monkeypatch, tmp_path):
    monkeypatch.setattr(estimate_lib, "ESTIMATES", tmp_path / "estimates.jsonl")
    code, stdout, _ = run("--profile", "smoke", "--device", "cpu")
    assert code == 0 and json.loads(stdout.strip().splitlines()[-1])["hours"] > 0
    assert not (tmp_path / "estimates.jsonl").exists()


@pytest.mark.parametrize("args, words", [
    (["--profile", "nope"], "unknown profile"),
    (["--profile", "smoke", "--pack", "0"], "pack must be"),
    (["--profile", "smoke", "--steps", "0"], "steps must be"),
    (["--profile", "smoke", "--networks", "resnet-110"], "not in the smoke profile"),
])
def test_bad_input_exits_2_with_one_line(args, words):
    code, stdout, stderr = run(*args)
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and words in stderr
