import os
import shutil
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # the test command's workers (one more than cores): a thread each for torch, here and in the
    # processes they start (CLIs, kernels, book builds), or their threads fight over the cores
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest
import torch

from bnlib import data
from stores import write_store


if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def _scope(nodeid: str) -> str:
    """What one worker runs from start to end: a file (a notebook's cells share one kernel under
    nbval, the browser tests write in the clone and check what it holds, and a module's fixtures
    are made once), but the Ray sweeps' tests one by one (long, and sharing nothing)."""
    path = nodeid.split("::", 1)[0]
    return nodeid if path == "tests/test_sweep.py" else path


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # pytest alone runs everything in order
    pass
else:
    class _Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    def pytest_xdist_make_scheduler(config, log):
        return _Scheduling(config, log)


def pytest_collection_modifyitems(items):
    """The longest first, so that no worker is left alone with them at the end: the browser
    tests (a whole book build), then the Ray sweeps."""
    items.sort(key=lambda item: {"test_browser.py": 0, "test_sweep.py": 1}.get(item.path.name, 2))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests never touch the user's data cache."""
    os.environ["BNLIB_CACHE"] = str(tmp_path_factory.mktemp("bnlib-cache"))


@pytest.fixture(autouse=True)
def _store_warnings_as_by_default():
    """book.setup() shows the store's warnings as notes on stdout (for a chapter's page); a test
    that called it must not change how the next test sees them."""
    import logging

    logger = logging.getLogger("bnlib")
    handlers = list(logger.handlers)
    yield
    logger.handlers[:] = handlers


@pytest.fixture(scope="session")
def tiny():
    """A small learnable CIFAR-shaped data set: a few steps per epoch."""
    return data.synthetic(train_size=256, test_size=128)


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def synthetic():
    return data.load("synthetic")  # what the smoke profile reads


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """A results store written as plain files, no training: resnet-8 and resnet-14, three
    modes (All, BN, BN+S+O), two seeds, one epoch, each run with its Figure 7 curve. Read only."""
    return write_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, synthetic) -> Path:
    """The runs whose weights tests re-evaluate: resnet-8 trained BatchNorm-only on the smoke
    profile's synthetic data for one epoch, seeds 0 and 1, by the real trainer. Tests that
    write into a run (clamping curves) take a copy: :func:`trained_run`."""
    from bnlib import RunConfig
    from bnlib.train import train_replicates

    runs_dir = tmp_path_factory.mktemp("trained")
    # both seeds in one fused network: each stored exactly as if trained alone (test_fused), faster
    train_replicates([RunConfig.from_flat(model="resnet-8", trainable="bn", seed=seed, epochs=1, data="synthetic")
                      for seed in (0, 1)], runs_dir, dataset=synthetic)
    return runs_dir


@pytest.fixture
def trained_run(trained_store, tmp_path) -> Path:
    """A private copy of one trained run folder, in a store of its own."""
    from bnlib import results

    source = results.run_dirs(trained_store)[0]
    return Path(shutil.copytree(source, tmp_path / "runs" / source.name))
