"""Layers: the normalisation switch and the roles each layer declares."""

import torch

from bnlib.layers import BatchNorm2d, Conv2d, Linear, parameter_parts


def test_normalize_switch_applies_only_gamma_and_beta():
    bn = BatchNorm2d(4, normalize=False)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, -1.0, 0.0]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, 0.5, 3.0]))
    x = torch.randn(8, 4, 5, 5) * 7 + 3
    expected = x * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(bn.train()(x), expected)
    torch.testing.assert_close(bn.eval()(x), expected)
    normalized = BatchNorm2d(4).train()(x)
    assert normalized.mean().abs() < 0.5  # the default layer does normalise



def test_each_layer_declares_the_parts_of_its_parameters():
    assert BatchNorm2d(4).roles() == {"weight": {"gamma"}, "bias": {"beta"}}
    assert BatchNorm2d(4, shortcut=True).roles() == {"weight": {"gamma", "shortcut"}, "bias": {"beta", "shortcut"}}
    assert Conv2d(3, 4, 3).roles() == {"weight": {"conv"}} and Conv2d(3, 4, 1, role="shortcut").roles() == {"weight": {"shortcut"}}
    assert Linear(4, 10).roles() == {"weight": {"output"}, "bias": {"output"}}


def test_resnet_parts_as_before():
    """The parts of ResNet-14's parameters, by module path: what the run addresses were built on."""
    from bnlib.models import build

    parts = parameter_parts(build("resnet-14", device="meta"))
    assert parts["bn.weight"] == {"gamma"} and parts["conv.weight"] == {"conv"} and parts["fc.weight"] == {"output"}
    assert parts["blocks.2.shortcut.0.weight"] == {"shortcut"}
    assert parts["blocks.2.shortcut.1.bias"] == {"beta", "shortcut"}
    assert parts["blocks.2.bn2.weight"] == {"gamma"}
    assert {frozenset(p) for p in parts.values()} == {frozenset(p) for p in (
        {"gamma"}, {"beta"}, {"conv"}, {"output"}, {"shortcut"}, {"gamma", "shortcut"}, {"beta", "shortcut"})}


def test_runs_fuse_as_grouped_layers():
    conv, bn, fc = Conv2d(3, 4, 3, runs=2), BatchNorm2d(4, runs=2), Linear(4, 10, runs=2)
    assert conv.weight.shape == (8, 3, 3, 3) and conv.groups == 2 and bn.weight.shape == (8,)
    assert fc(torch.randn(5, 8)).shape == (5, 2, 10)
