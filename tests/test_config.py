"""Typed run configs: Appendix B's defaults, one type per number, one name per network."""

import json

import pytest

from bnlib import ConfigError, RunConfig, results


def test_defaults_are_appendix_b():
    c = RunConfig()
    assert (c.train.epochs, c.train.batch_size, c.train.lr, c.train.momentum, c.train.weight_decay) == (
        160, 128, 0.1, 0.9, 1e-4)
    assert (c.model.bn_init, c.model.feature_init, c.model.normalize, c.data.augment) == (
        "uniform", "he-normal", True, True)


def test_a_number_addresses_the_same_run_whatever_its_type():
    import numpy as np

    typed = RunConfig.from_flat(model="resnet-8", epochs=2, seed=1, lr=1.0)
    loose = RunConfig.from_flat(model="resnet-8", epochs=2.0, seed=np.int64(1), lr=1)  # YAML, pandas, a hand
    assert loose == typed and json.dumps(loose.flat()) == json.dumps(typed.flat())
    assert results.address(loose, "data") == results.address(typed, "data")
    assert type(loose.train.epochs) is int and type(loose.train.lr) is float


def test_unknown_field():
    with pytest.raises(ConfigError, match="unknown config field"):
        RunConfig.from_flat(depth=3)


def test_a_network_is_named_once_where_its_config_is_made():
    assert RunConfig.from_flat(model=" WRN-14-1 ").model.model == "resnet-14"
    assert RunConfig.from_flat(model="WRN-14-2").model.model == "wrn-14-2"
    assert RunConfig.from_flat(model="vgg-16").model.model == "vgg-16"  # left for validation to report
