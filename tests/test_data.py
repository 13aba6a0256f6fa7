"""Data sources, the uint8 cache, the fingerprint, and batch augmentation."""

import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from bnlib import ConfigError, data


def reference_crop_flip(image: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """torchvision's RandomCrop(32, padding=4) then RandomHorizontalFlip, for one image."""
    padded = torch.nn.functional.pad(image.float(), (4, 4, 4, 4)).to(torch.uint8)
    out = padded[:, dy:dy + 32, dx:dx + 32]
    return out.flip(-1) if flip else out


def test_crop_flip_matches_per_image_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 32, 32), generator=g, dtype=torch.uint8)
    dy, dx = torch.randint(0, 9, (2, 64), generator=g)
    flip = torch.rand(64, generator=g) < 0.5
    out = data.crop_flip(x, dy, dx, flip)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    for i in range(64):
        assert torch.equal(out[i], reference_crop_flip(x[i], int(dy[i]), int(dx[i]), bool(flip[i])))


def test_crop_extremes_and_identity():
    x = torch.arange(3 * 32 * 32, dtype=torch.int64).reshape(1, 3, 32, 32).remainder(250).add(1).to(torch.uint8)
    center = data.crop_flip(x, torch.tensor([4]), torch.tensor([4]), torch.tensor([False]))
    assert torch.equal(center, x)
    corner = data.crop_flip(x, torch.tensor([0]), torch.tensor([8]), torch.tensor([False]))
    assert torch.all(corner[0, :, :4, :] == 0) and torch.all(corner[0, :, :, -4:] == 0)  # zero padding
    assert torch.equal(corner[0, :, 4:, :28], x[0, :, :28, 4:])
    mirrored = data.crop_flip(x, torch.tensor([4]), torch.tensor([4]), torch.tensor([True]))
    assert torch.equal(mirrored, x.flip(-1))


def test_epoch_batches_are_seeded_and_cover_the_data(tiny):
    def labels(seed, epoch):
        return torch.cat([y for _, y in data.train_batches(tiny, 100, seed, epoch)])

    assert torch.equal(labels(0, 0), labels(0, 0))
    assert not torch.equal(labels(0, 0), labels(0, 1))
    assert not torch.equal(labels(0, 0), labels(1, 0))
    assert torch.equal(labels(0, 0).sort().values, tiny.train_y.sort().values)
    sizes = [len(y) for _, y in data.train_batches(tiny, 100, 0, 0)]
    assert sizes == [100, 100, 56]  # the last, smaller batch is kept
    x, _ = next(data.train_batches(tiny, 256, 0, 0, augment=False))
    assert x.dtype == torch.float32
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.05  # normalised per channel with train statistics


def test_synthetic_is_seeded_and_cifar_shaped():
    a, b = data.synthetic(), data.synthetic()
    assert a.train_x.shape == (1024, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert a.fingerprint == b.fingerprint and torch.equal(a.train_x, b.train_x)
    assert set(a.train_y.tolist()) == set(range(10))
    assert data.load("synthetic").fingerprint == a.fingerprint


def make_images(n_per_class, classes, seed):
    rng = np.random.default_rng(seed)
    return {c: [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(n_per_class)] for c in classes}


def write_image_folder(root, classes=("cat", "airplane", "dog")):
    images = {}
    for split, n in (("train", 3), ("test", 2)):
        images[split] = make_images(n, classes, seed=len(split))
        for cls, arrays in images[split].items():
            (root / split / cls).mkdir(parents=True)
            for i, array in enumerate(arrays):
                Image.fromarray(array).save(root / split / cls / f"{i:04d}.png")  # lossless
    return images


def test_image_folder_and_its_tar_gz(tmp_path):
    images = write_image_folder(tmp_path / "folder")
    from_folder = data.load(str(tmp_path / "folder"))
    assert from_folder.classes == ["airplane", "cat", "dog"]  # sorted, as CIFAR-10's label order
    assert from_folder.train_x.shape == (9, 3, 32, 32) and from_folder.test_x.shape == (6, 3, 32, 32)
    first_cat = from_folder.train_x[from_folder.train_y == 1][0]
    assert torch.equal(first_cat, torch.from_numpy(images["train"]["cat"][0]).permute(2, 0, 1))

    archive = tmp_path / "copy.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "folder", arcname="cifar10-copy")
    from_tar = data.load(str(archive))
    assert from_tar.fingerprint == from_folder.fingerprint  # same pixels and labels, same fingerprint
    assert from_tar.source.startswith("image-folder-tar:")


def test_decoded_once_then_read_from_cache(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "folder")
    first = data.load(str(tmp_path / "folder"))
    monkeypatch.setattr(data, "_decode_image_folder", lambda path: pytest.fail("decoded twice"))
    again = data.load(str(tmp_path / "folder"))
    assert again.fingerprint == first.fingerprint and torch.equal(again.train_x, first.train_x)


def test_torchvision_folder(tmp_path):
    folder = tmp_path / "tv" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def dump(name, n):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        return batch

    train = [dump(f"data_batch_{i}", 4) for i in range(1, 6)]
    dump("test_batch", 6)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    ds = data.load(str(tmp_path / "tv"))
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (6, 3, 32, 32)
    assert torch.equal(ds.train_x[0], torch.from_numpy(train[0][b"data"][0].reshape(3, 32, 32)))
    assert ds.train_y.tolist()[:4] == [int(v) for v in train[0][b"labels"]]
    assert ds.classes[0] == "c0" and ds.source.startswith("torchvision:")


@pytest.mark.parametrize("bad", ["/no/such/path", "__FILE__", "__EMPTY_DIR__"])
def test_bad_paths_get_a_clear_error(bad, tmp_path):
    if bad == "__FILE__":
        bad = str(tmp_path / "x.txt")
        (tmp_path / "x.txt").write_text("hi")
    elif bad == "__EMPTY_DIR__":
        bad = str(tmp_path)
    with pytest.raises(ConfigError):
        data.load(bad)


def test_offline_cifar10_says_how_to_provide_data(monkeypatch, tmp_path):
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path))

    class Offline:
        def __init__(self, *args, **kwargs):
            raise OSError("network unreachable")

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    with pytest.raises(data.DataUnavailable, match="--data PATH"):
        data.load("cifar10")
