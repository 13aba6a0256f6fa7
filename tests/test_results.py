"""The results store's address: one function, spelling-independent, stable under new fields."""

import pytest

from bnlib import results
from bnlib.config import RunConfig


def config(**values):
    return RunConfig.from_flat(**{"model": "resnet-8", "epochs": 1, "data": "synthetic", **values})


def test_the_address_names_the_network_and_hashes_what_is_computed():
    a = results.address(config(), "f00d")
    assert a.startswith("resnet-8_") and len(a.split("_")[1]) == 12
    assert results.address(config(seed=1), "f00d") != a
    assert results.address(config(), "beef") != a  # another data set is another run


@pytest.mark.parametrize("same", [
    dict(trainable="all"), dict(trainable="output,shortcut,conv,bn"),  # the same tensors train
    dict(model="WRN-8-1"), dict(model=" ResNet-8 "),  # one name per network
    dict(device="cpu"), dict(channels_last=False), dict(compile="default"),  # where and how, not what
    dict(data="/somewhere/else/synthetic"),  # the data set is its fingerprint, not its path
    dict(epochs=1.0), dict(lr=0.1),  # a number of another type
])
def test_what_does_not_change_a_run_does_not_move_it(same):
    assert results.address(config(**same), "f00d") == results.address(config(), "f00d")


def test_a_mode_is_the_set_of_tensors_it_trains():
    assert results.address(config(trainable="bn,shortcut,output"), "f") == \
        results.address(config(trainable="output,shortcut,gamma,beta"), "f")
    assert results.address(config(trainable="bn"), "f") != results.address(config(trainable="gamma"), "f")


def test_stored_configs_name_their_data_without_a_path():
    assert results.data_name("/home/someone/data/cifar10-jpeg.tar.gz") == "cifar10-jpeg.tar.gz"
    assert results.data_name("relative/folder/") == "folder"
    assert results.data_name("cifar10") == "cifar10" and results.data_name("synthetic") == "synthetic"
    record = results.config_record(config(data="/x/y/copy.tar.gz"), {"data_fingerprint": "f"})
    assert record["data"] == "copy.tar.gz" and record["data_fingerprint"] == "f" and record["model"] == "resnet-8"


def test_find_matches_by_address_with_or_without_a_fingerprint(tmp_path):
    wanted, other = config(trainable="bn"), config(trainable="all")
    for fingerprint in ("f1", "f2"):
        folder = results.run_dir(tmp_path, wanted, fingerprint)
        folder.mkdir()
        results.write_json(folder / results.CONFIG, results.config_record(wanted, {"data_fingerprint": fingerprint}))
        results.write_json(folder / results.RESULT, {"status": "complete", "test_accuracy": 50.0,
                                                     "data_fingerprint": fingerprint})
    found, missing = results.find(tmp_path, [wanted, other], "f2")
    assert list(found["run_dir"]) == [str(results.run_dir(tmp_path, wanted, "f2"))] and missing == [other]
    found, missing = results.find(tmp_path, [wanted])  # any data set the store holds
    assert len(found) == 1 and not missing
    found, missing = results.find(tmp_path / "empty", [wanted])
    assert found.empty and missing == [wanted]
