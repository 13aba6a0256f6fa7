"""The architecture registry: names, coordinates, and a family added from outside bnlib.

The toy family below is defined here, in the test, and reaches ``bnlib train``, a sweep on Ray
and a chapter's plan without any edit to bnlib: a newcomer's architecture is one module.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bnlib import ConfigError, architectures, cli, results
from bnlib.architectures import Network
from bnlib.freezing import trainable_names
from bnlib.layers import BatchNorm2d, Conv2d, Linear
from bnlib.models import build, fuse, parameter_counts, parameter_parts

ROOT = Path(__file__).resolve().parents[1]


class ToyNet(nn.Module):
    """conv-BN-ReLU, a 1x1 'shortcut' conv with its BN, pooled, then the output layer."""

    def __init__(self, width: int, normalize: bool, num_classes: int, runs: int):
        super().__init__()
        self.conv = Conv2d(3, width, 3, runs=runs)
        self.bn = BatchNorm2d(width, normalize, runs=runs)
        self.skip = Conv2d(3, width, 1, role="shortcut", runs=runs)
        self.skip_bn = BatchNorm2d(width, normalize, shortcut=True, runs=runs)
        self.fc = Linear(width, num_classes, runs=runs)

    def forward(self, x):
        out = F.relu(self.bn(self.conv(x)) + self.skip_bn(self.skip(x)))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class ToyFamily:
    name = "toy"
    forms = "toy-W (W >= 1 filters)"

    def parse(self, name):
        match = re.fullmatch(r"toy-(\d+)", name)
        if match is None:
            return None
        if int(match.group(1)) < 1:
            raise ConfigError(f"unknown model {name!r}: W >= 1")
        return Network(name, self.name, depth=1, width=int(match.group(1)), series="wide")

    def build(self, network, *, normalize, num_classes, runs):
        return ToyNet(network.width, normalize, num_classes, runs)

    def cost(self, network):
        return network.width


FAMILY = ToyFamily()


@pytest.fixture
def toy(monkeypatch):
    """The toy family registered here and, through the environment, in every child process."""
    architectures.register(FAMILY)
    monkeypatch.setenv("BNLIB_ARCHITECTURES", "test_architectures:FAMILY")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
    yield FAMILY
    architectures.unregister("toy")


def test_names_and_coordinates():
    assert architectures.lookup("ResNet-110") == Network("resnet-110", "resnet", 18, 1)
    assert architectures.lookup("wrn-14-32") == Network("wrn-14-32", "resnet", 2, 32, series="wide")
    assert architectures.lookup("WRN-14-1").name == "resnet-14"  # one name per network
    assert architectures.lookup("wrn-14-1").series == "wide"  # where the width sweeps start
    assert architectures.lookup("resnet-56").series == "deep" and architectures.lookup("wrn-14-2").series == "wide"
    assert architectures.canonical_name(" WRN-32-1 ") == "resnet-32"
    assert architectures.canonical_name("vgg-16") == "vgg-16"  # left for validation to report


@pytest.mark.parametrize("name", ["resnet-15", "resnet-2", "wrn-14", "wrn-14-0", "vgg-16", "resnet14", ""])
def test_bad_names_are_rejected_with_the_valid_forms(name):
    with pytest.raises(ConfigError, match="resnet-N"):
        architectures.lookup(name)


def test_costs_grow_as_depth_times_width_squared():
    cost = architectures.cost
    assert cost("wrn-14-4") == 16 * cost("resnet-14") and 2 * cost("resnet-56") == 9 * cost("resnet-14")
    assert cost("wrn-14-1") == cost("resnet-14")


def test_unknown_names_list_every_family(toy):
    with pytest.raises(ConfigError, match=r"resnet-N.*toy-W"):
        architectures.lookup("vgg-16")


def test_a_family_registers_once(toy):
    with pytest.raises(ValueError, match="registered already"):
        architectures.register(FAMILY)


def test_roles_come_from_the_layers_of_a_new_family(toy):
    model = build("toy-4", seed=1)
    parts = parameter_parts(model)
    assert parts["bn.weight"] == {"gamma"} and parts["skip_bn.bias"] == {"beta", "shortcut"}
    assert parts["skip.weight"] == {"shortcut"} and parts["fc.bias"] == {"output"} and parts["conv.weight"] == {"conv"}
    assert set(trainable_names(model, "bn")) == {"bn.weight", "bn.bias", "skip_bn.weight", "skip_bn.bias"}
    assert parameter_counts(model) == {"batchnorm": 16, "shortcut": 3 * 4 + 8, "output": 4 * 10 + 10,
                                       "total": 27 * 4 + 16 + 12 + 50}
    # initialised by role: gamma ~ U[0,1] and beta = 0 (uniform), output bias 0
    assert torch.all((model.bn.weight >= 0) & (model.bn.weight <= 1)) and torch.all(model.skip_bn.bias == 0)
    assert torch.all(model.fc.bias == 0) and model.conv.weight.std() > 0


def test_a_layer_without_roles_is_refused(toy):
    model = build("toy-2")
    model.extra = nn.Linear(2, 2)  # a plain torch layer declares no role
    with pytest.raises(TypeError, match="extra.weight"):
        parameter_parts(model)


def test_a_new_family_fuses(toy):
    nets = [build("toy-3", seed=s).train() for s in (0, 1)]
    fused = fuse(nets).train()
    x = torch.randn(4, 3, 8, 8)
    out = fused(torch.cat([x, x], dim=1))
    for r, net in enumerate(nets):
        torch.testing.assert_close(out[:, r], net(x), rtol=1e-4, atol=1e-5)


def test_a_new_family_trains_through_the_cli_a_sweep_and_a_plan(toy, tmp_path, capsys):
    pytest.importorskip("ray")
    from bnlib import sweep
    from bnlib.plan import Plan

    # bnlib train
    assert cli.main(["train", "--model", "toy-4", "--trainable", "bn", "--epochs", "1", "--data", "synthetic",
                     "--runs-dir", str(tmp_path / "cli"), "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "complete" and Path(result["run_dir"]).name.startswith("toy-4_")

    # a chapter's plan: its figures' grids over the toy networks, trained when missing
    plan = Plan.from_parameters("smoke", models=["toy-2", "toy-3"], runs_dir=str(tmp_path / "plan"),
                                modes=["bn", "all"])
    assert plan.networks("wide") == ("toy-2", "toy-3")
    found = plan.ensure(plan.figure2())
    assert sorted(found["model"]) == ["toy-2", "toy-2", "toy-3", "toy-3"] and set(found["status"]) == {"complete"}

    # a sweep on Ray: the workers learn the family from BNLIB_ARCHITECTURES
    out = subprocess.run([sys.executable, "-m", "bnlib", "sweep", "--models", "toy-2,toy-5", "--trainable", "bn",
                          "--epochs", "1", "--data", "synthetic", "--runs-dir", str(tmp_path / "sweep"),
                          "--no-progress"], capture_output=True, text=True,
                         env={**os.environ, "RAY_AUTH_MODE": "disabled"}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["trained"] == 2
    stored = results.load(tmp_path / "sweep")
    assert sorted(stored["model"]) == ["toy-2", "toy-5"] and set(stored["status"]) == {"complete"}
