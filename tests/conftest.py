import os
from pathlib import Path

import pytest

from bnlib import data


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests never touch the user's data cache."""
    os.environ["BNLIB_CACHE"] = str(tmp_path_factory.mktemp("bnlib-cache"))


@pytest.fixture(scope="session")
def tiny():
    """A small learnable CIFAR-shaped data set: a few steps per epoch."""
    return data.synthetic(train_size=256, test_size=128)


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "runs"
