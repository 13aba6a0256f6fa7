"""Initial values of gamma, beta and the random features, checked directly after build()
(the authors' framework once skipped its BatchNorm init for months unnoticed)."""

import math

import pytest
import torch
from torch import nn

from bnlib import ConfigError, models
from bnlib.init import BN_INITS, FEATURE_INITS


def batchnorms(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def all_gamma_beta(model):
    layers = batchnorms(model)
    return torch.cat([m.weight.detach() for m in layers]), torch.cat([m.bias.detach() for m in layers])


def test_default_is_the_papers_uniform_gamma_zero_beta():
    gamma, beta = all_gamma_beta(models.build("resnet-20"))
    assert gamma.min() >= 0 and gamma.max() <= 1
    assert 0.4 < gamma.mean() < 0.6 and gamma.std() > 0.25  # U[0,1]: mean 1/2, std 0.289
    assert not torch.all(gamma == 1)  # not PyTorch's own default
    assert torch.all(beta == 0)


def test_ones():
    gamma, beta = all_gamma_beta(models.build("resnet-14", bn_init="ones"))
    assert torch.all(gamma == 1) and torch.all(beta == 0)


def test_symmetric():
    gamma, beta = all_gamma_beta(models.build("resnet-20", bn_init="symmetric"))
    assert gamma.min() >= -1 and gamma.max() <= 1
    assert gamma.min() < -0.9 and gamma.max() > 0.9 and abs(gamma.mean()) < 0.1
    assert torch.all(beta == 0)


def test_ones_beta_one():
    gamma, beta = all_gamma_beta(models.build("resnet-14", bn_init="ones-beta-one"))
    assert torch.all(gamma == 1) and torch.all(beta == 1)


def test_running_statistics_start_fresh():
    for bn in batchnorms(models.build("resnet-14")):
        assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)


def feature_weights(model):
    return [m.weight.detach() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("scheme", ["he-normal", "he-uniform"])
def test_he_variance(scheme):
    for w in feature_weights(models.build("wrn-14-2", feature_init=scheme)):
        he_std = math.sqrt(2.0 / w[0].numel())
        assert w.std().item() == pytest.approx(he_std, rel=0.15 if w.numel() > 500 else 0.4)
    if scheme == "he-uniform":
        w = feature_weights(models.build("resnet-14", feature_init=scheme))[5]
        assert w.abs().max() <= math.sqrt(3) * math.sqrt(2.0 / w[0].numel()) + 1e-6


def test_binary_is_plus_minus_sigma_per_layer():
    for w in feature_weights(models.build("resnet-14", feature_init="binary")):
        sigma = math.sqrt(2.0 / w[0].numel())
        assert torch.allclose(w.abs(), torch.full_like(w, sigma))
        assert 0.3 < (w > 0).float().mean() < 0.7


def test_orthogonal_rows_or_columns_are_orthogonal():
    for w in feature_weights(models.build("resnet-14", feature_init="orthogonal")):
        m = w.reshape(w.shape[0], -1) / math.sqrt(2.0)
        gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        torch.testing.assert_close(gram, torch.eye(gram.shape[0]), atol=1e-4, rtol=0)


def test_output_bias_starts_at_zero():
    for scheme in FEATURE_INITS:
        assert torch.all(models.build("resnet-8", feature_init=scheme).fc.bias == 0)


@pytest.mark.parametrize("scheme", list(FEATURE_INITS))
def test_same_seed_same_features_other_seed_other_features(scheme):
    a, b, c = (models.build("resnet-8", feature_init=scheme, seed=s) for s in (3, 3, 4))
    for (name, x), y, z in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(x, y), name
    assert not torch.equal(a.conv.weight, c.conv.weight)
    assert not torch.equal(a.bn.weight, c.bn.weight)


def test_unknown_schemes_name_the_choices():
    with pytest.raises(ConfigError, match="ones-beta-one"):
        models.build("resnet-8", bn_init="zeros")
    with pytest.raises(ConfigError, match="orthogonal"):
        models.build("resnet-8", feature_init="xavier")
    assert set(BN_INITS) == {"uniform", "ones", "symmetric", "ones-beta-one"}
