"""Each training mode changes exactly the tensors it names; everything else stays bit-identical."""

import pytest
import torch
from torch import nn

from bnlib import ConfigError, RunConfig, analysis, models, results
from bnlib.freezing import PAPER_MODES, apply_trainable, canonical, parse_trainable
from bnlib.train import train


def expected_trainable(model: nn.Module, spec: str) -> set[str]:
    """The mode's tensors, found from module types and names, independently of freezing.py."""
    bn_weight, bn_bias, shortcut, conv, output = set(), set(), set(), set(), set()
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            bn_weight.add(f"{name}.weight")
            bn_bias.add(f"{name}.bias")
        if isinstance(module, nn.Conv2d):
            (shortcut if "shortcut" in name else conv).add(f"{name}.weight")
        if isinstance(module, nn.Linear):
            output |= {f"{name}.weight", f"{name}.bias"}
    shortcut |= {n for n in bn_weight | bn_bias if "shortcut" in n}
    everything = bn_weight | bn_bias | shortcut | conv | output
    return {
        "all": everything,
        "none": set(),
        "bn": bn_weight | bn_bias,
        "gamma": bn_weight,
        "beta": bn_bias,
        "conv": conv,
        "bn,shortcut,output": bn_weight | bn_bias | shortcut | output,
        "shortcut,output": shortcut | output,
        "all,-bn": everything - bn_weight - bn_bias,
    }[spec]


MODES = ["all", "none", "bn", "gamma", "beta", "conv", "bn,shortcut,output", "shortcut,output", "all,-bn"]


@pytest.mark.parametrize("spec", MODES)
def test_exactly_the_named_tensors_change(spec, tiny, runs):
    config = RunConfig.from_flat(model="resnet-8", trainable=spec, epochs=1, data="synthetic")
    result = train(config, runs, dataset=tiny)
    before = models.build("resnet-8").state_dict()
    after = analysis.load_weights(result.run_dir)
    expected = expected_trainable(models.build("resnet-8"), spec)
    params = {n for n, _ in models.build("resnet-8").named_parameters()}
    assert expected <= params
    for name in params:
        changed = not torch.equal(before[name], after[name])
        assert changed == (name in expected), (spec, name, changed)
    # BatchNorm running statistics update in every mode, "none" included (the paper's None baseline)
    assert not torch.equal(before["bn.running_mean"], after["bn.running_mean"])


def test_none_trains_nothing_and_stays_near_chance(tiny, runs):
    config = RunConfig.from_flat(model="resnet-8", trainable="none", epochs=2, data="synthetic")
    result = train(config, runs, dataset=tiny)
    assert result.status == "complete"
    assert result.test_accuracy < 40  # 10 classes: chance is 10%


def test_apply_trainable_sets_requires_grad_and_returns_only_trainable():
    model = models.build("resnet-14")
    params = apply_trainable(model, "bn")
    assert len(params) == 2 * sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(p.numel() for p in params) == models.parameter_counts(model)["batchnorm"]
    assert all(p.requires_grad for p in params)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    assert all(p.grad is None for p in frozen)  # no gradient is computed for a frozen tensor


def test_spelling_does_not_change_the_identity():
    model = models.build("resnet-8", device="meta")
    assert canonical("bn,shortcut,output", model) == canonical("output, shortcut,gamma,beta,bn", model)
    assert canonical("all", model) == canonical("bn,conv,shortcut,output", model)
    assert canonical("all,-bn", model) != canonical("conv,output", model)  # the 1x1 convs differ
    assert canonical("none", model) == canonical("bn,-bn", model) == "none"


def test_every_paper_mode_parses():
    for spec in PAPER_MODES.values():
        parse_trainable(spec)


@pytest.mark.parametrize("spec", ["", "bn,weights", "-", "batchnorm"])
def test_bad_parts_name_the_choices(spec):
    with pytest.raises(ConfigError):
        parse_trainable(spec)


def test_paper_labels_follow_the_trained_tensors_not_the_spelling():
    from bnlib.freezing import paper_label

    assert paper_label("gamma,beta", "resnet-14") == "BN"
    assert paper_label("output,bn,shortcut", "resnet-8") == "BN+S+O"
    assert paper_label("all,-gamma,-beta", "resnet-8") == "gamma/beta frozen"  # = all,-bn
    assert paper_label("conv,shortcut,output", "resnet-8") != "gamma/beta frozen"  # trains the shortcut BN
    assert paper_label("conv", "resnet-8") == "conv"
