"""Data sources, the uint8 cache, the fingerprint, and batch augmentation."""

import gzip
import pickle
import re
import tarfile
import warnings

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


def write_torchvision_folder(root, train_labels, test_labels):
    """torchvision's CIFAR-10 files: five training batches and a test batch, pickled."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def dump(name, labels):
        batch = {b"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8), b"labels": list(labels)}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        return batch

    train = [dump(f"data_batch_{i}", labels) for i, labels in enumerate(np.array_split(train_labels, 5), 1)]
    dump("test_batch", test_labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return train


@pytest.fixture
def small_cifar10(monkeypatch):
    """CIFAR-10's checks with 2 train and 1 test image per class instead of 5,000 and 1,000."""
    monkeypatch.setattr(data, "CIFAR10_PER_CLASS", {"train": 2, "test": 1})


def test_torchvision_folder(tmp_path, small_cifar10):
    rng = np.random.default_rng(1)
    train = write_torchvision_folder(tmp_path / "tv", rng.permutation(np.arange(20) % 10), rng.permutation(10))
    ds = data.load(str(tmp_path / "tv"))
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (10, 3, 32, 32)
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


# --------------------------------------------------------------------------- checks before training

def write_folder(root, classes, n_train, n_test, size=(32, 32), seed=0):
    """An image folder of random lossless PNGs; ``size`` is (width, height)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(array).save(root / split / cls / f"{i:04d}.png")
    return root


def make_tar(folder, archive, mode):
    with tarfile.open(archive, mode) as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def cut_at_last_member(archive):
    """The archive's bytes up to its last file's header: every remaining member intact,
    no end-of-archive marker, as a copy interrupted between two files leaves it."""
    with tarfile.open(archive) as tar:
        last = [m for m in tar.getmembers() if m.isfile()][-1]
    return archive.read_bytes()[:last.offset]


def bad_archive(tmp_path, kind):
    folder = write_folder(tmp_path / "images", ("a", "b"), 2, 1)
    plain = make_tar(folder, tmp_path / "whole.tar", "w")
    squeezed = make_tar(folder, tmp_path / "whole.tar.gz", "w:gz")
    rng = np.random.default_rng(0)
    name, content = {
        "tar cut at a member boundary": ("cut.tar", cut_at_last_member(plain)),
        "tar cut inside a file": ("cut-inside.tar", plain.read_bytes()[:3000]),
        "tar.gz of a tar cut at a member boundary": ("cut-inside.tar.gz", gzip.compress(cut_at_last_member(plain))),
        "tar.gz cut": ("cut.tar.gz", squeezed.read_bytes()[: squeezed.stat().st_size // 2]),
        "tar.gz with its last bytes cut": ("cut-end.tar.gz", squeezed.read_bytes()[:-4]),
        "empty tar.gz": ("empty.tar.gz", b""),
        "empty tar": ("empty.tar", b""),
        "random tar": ("random.tar", rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()),
        "random gzip": ("random.tar.gz", b"\x1f\x8b" + rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()),
        "text named tar.gz": ("fake.tar.gz", b"<html>404 Not Found</html>\n" * 50),
    }[kind]
    (tmp_path / name).write_bytes(content)
    return tmp_path / name


BAD_ARCHIVES = ["tar cut at a member boundary", "tar cut inside a file", "tar.gz of a tar cut at a member boundary",
                "tar.gz cut", "tar.gz with its last bytes cut", "empty tar.gz", "empty tar", "random tar",
                "random gzip", "text named tar.gz"]


@pytest.mark.parametrize("kind", BAD_ARCHIVES)
def test_damaged_archives_are_refused_in_one_line(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "cache"))
    archive = bad_archive(tmp_path, kind)
    with pytest.raises(ConfigError) as refused:
        data.load(str(archive))
    message = str(refused.value)
    assert archive.name in message and "\n" not in message
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())  # nothing cached


def test_whole_archives_still_load(tmp_path):
    folder = write_folder(tmp_path / "images", ("a", "b"), 2, 1)
    fingerprints = {data.load(str(make_tar(folder, tmp_path / name, mode))).fingerprint
                    for name, mode in (("x.tar", "w"), ("x.tar.gz", "w:gz"), ("x.tgz", "w:gz"))}
    assert fingerprints == {data.load(str(folder)).fingerprint}


def test_a_cut_archive_ends_the_cli_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from bnlib.cli import main

    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "cache"))
    archive = bad_archive(tmp_path, "tar cut at a member boundary")
    runs = tmp_path / "runs"
    code = main(["train", "--data", str(archive), "--epochs", "1", "--model", "resnet-8", "--runs-dir", str(runs)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("bnlib: error:") and "cut.tar" in err
    # the store may have been created (checked writable) but holds nothing; nothing was cached
    assert not runs.exists() or not any(runs.rglob("*"))
    assert not (tmp_path / "cache").exists()


def test_a_folder_with_12_classes_and_its_summary(tmp_path):
    classes = [f"kind{i:02d}" for i in range(12)]
    ds = data.load(str(write_folder(tmp_path / "shapes", classes, 2, 1, size=(40, 24))))
    assert ds.classes == classes and len(ds.classes) == 12
    assert ds.train_x.shape == (24, 3, 24, 40) and set(ds.train_y.tolist()) == set(range(12))
    assert data.summary(ds) == "12 classes; train 24 (2 per class); test 12 (1 per class)"
    x, y = next(data.train_batches(ds, 8, seed=0, epoch=0))  # nothing assumes 10 classes or 32x32
    assert x.shape == (8, 3, 24, 40) and int(y.max()) < 12
    assert data.summary(data.synthetic(num_classes=12)).startswith("12 classes; train 1,024 (")


def test_synthetic_default_is_unchanged():
    assert data.synthetic().fingerprint == "e5ae3dad63eda8e9"  # what stored smoke runs record


def test_summary_of_uneven_counts():
    ds = data.synthetic(train_size=100, test_size=30, num_classes=3)
    text = data.summary(ds)
    assert text.startswith("3 classes; train 100 (") and " to " in text and "per class); test 30 (" in text


def test_mixed_image_sizes_are_refused_naming_a_file(tmp_path):
    folder = write_folder(tmp_path / "images", ("a", "b"), 2, 1)
    Image.fromarray(np.zeros((28, 30, 3), dtype=np.uint8)).save(folder / "train" / "b" / "odd.png")
    with pytest.raises(ConfigError, match=r"train/b/odd\.png is 30x28 .* 32x32") as refused:
        data.load(str(folder))
    assert "\n" not in str(refused.value)


def test_unreadable_image_is_refused_naming_it(tmp_path):
    folder = write_folder(tmp_path / "images", ("a", "b"), 2, 1)
    png = folder / "test" / "a" / "0000.png"
    png.write_bytes(png.read_bytes()[:200])  # cut short
    with pytest.raises(ConfigError, match=r"test/a/0000\.png is not a readable RGB image"):
        data.load(str(folder))


@pytest.mark.parametrize("classes, message", [
    (("cat",), "at least 2 classes; it holds 1 classes; train 2 (2 per class); test 1 (1 per class)"),
])
def test_too_few_classes_are_refused(tmp_path, classes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        data.load(str(write_folder(tmp_path / "images", classes, 2, 1)))


def test_train_and_test_classes_must_agree(tmp_path):
    folder = write_folder(tmp_path / "images", ("a", "b", "c"), 2, 1)
    for file in (folder / "test" / "c").iterdir():
        file.unlink()
    (folder / "test" / "c").rmdir()
    with pytest.raises(ConfigError, match="train/ has 3, test/ has 2; only in train/: c"):
        data.load(str(folder))


CIFAR10_NAMES = [f"c{i}" for i in range(10)]


@pytest.mark.parametrize("name", ["cifar10-small", "CIFAR-10_copy", "my_cifar10.tar.gz"])
def test_a_source_named_cifar10_must_hold_cifar10(name, tmp_path):
    folder = write_folder(tmp_path / "images", ("cat", "dog", "ship"), 2, 1)
    source = tmp_path / name
    if name.endswith(".tar.gz"):
        make_tar(folder, source, "w:gz")
    else:
        folder.rename(source)
    with pytest.raises(ConfigError, match=r"must hold 10 classes .*; it holds 3 classes; train 6 \(2 per class\)"):
        data.load(str(source))


def test_cifar100_is_not_cifar10(tmp_path):
    assert not data.claims_cifar10("image-folder", tmp_path / "cifar100-jpeg.tar.gz")
    assert data.claims_cifar10("image-folder", tmp_path / "cifar-10-jpeg.tar.gz")
    assert data.claims_cifar10("torchvision", tmp_path / "anything")


def test_cifar10_per_class_counts_are_checked(tmp_path, small_cifar10):
    folder = write_folder(tmp_path / "cifar10", CIFAR10_NAMES, 2, 1)
    assert data.summary(data.load(str(folder))) == "10 classes; train 20 (2 per class); test 10 (1 per class)"
    short = tmp_path / "short"
    (tmp_path / "cifar10").rename(short)
    (short / "train" / "c3" / "0001.png").unlink()
    short = short.rename(tmp_path / "cifar10-short")
    with pytest.raises(ConfigError, match=r"train 19 \(1 to 2 per class\).*train c3 has 1") as refused:
        data.load(str(short))
    assert "\n" not in str(refused.value)


def test_cifar10_image_size_is_checked(tmp_path, small_cifar10):
    with pytest.raises(ConfigError, match="its images are 40x40"):
        data.load(str(write_folder(tmp_path / "cifar10", CIFAR10_NAMES, 2, 1, size=(40, 40))))


def test_a_torchvision_folder_with_missing_images_is_refused(tmp_path, small_cifar10):
    write_torchvision_folder(tmp_path / "tv", np.arange(20) % 10, np.arange(9))  # c9 has no test image
    with pytest.raises(ConfigError, match=r"test 9 \(0 to 1 per class\).*test c9 has 0"):
        data.load(str(tmp_path / "tv"))


def test_full_size_cifar10_counts_without_60000_files():
    """The real counts, checked on arrays that take no memory: a test split cut to 9,500."""
    def images(n):
        return np.broadcast_to(np.zeros((1, 3, 32, 32), dtype=np.uint8), (n, 3, 32, 32))

    train_y, test_y = np.arange(50000) % 10, np.arange(10000) % 10
    data.check_contents(images(50000), train_y, images(10000), test_y, CIFAR10_NAMES, "cifar10", cifar10=True)
    cut = np.sort(test_y)[:9500]  # the last class loses half its test images
    with pytest.raises(ConfigError) as refused:
        data.check_contents(images(50000), train_y, images(9500), cut, CIFAR10_NAMES, "cifar10", cifar10=True)
    assert str(refused.value) == (
        "cifar10: a CIFAR-10 source must hold 10 classes of 32x32 RGB images, 5,000 train and 1,000 test per "
        "class; it holds 10 classes; train 50,000 (5,000 per class); test 9,500 (500 to 1,000 per class) "
        "(test c9 has 500; a download or copy cut short?)")


# --------------------------------------------------------------------------- the decode cache

def corrupt(cache, how):
    if how == "truncated":
        cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    elif how == "garbage":
        cache.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif how == "missing key":
        with np.load(cache) as z:
            kept = {k: z[k] for k in z.files if k != "test_y"}
        np.savez(cache, **kept)
    elif how == "tampered pixels":
        with np.load(cache) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["train_x"][0, 0, 0, 0] ^= 1
        np.savez(cache, **arrays)


@pytest.mark.parametrize("how", ["truncated", "garbage", "missing key", "tampered pixels"])
def test_a_damaged_cache_is_deleted_and_rebuilt(how, tmp_path, monkeypatch):
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "cache"))
    folder = write_folder(tmp_path / "images", ("a", "b"), 2, 1)
    fresh = data.load(str(folder))
    [cache] = (tmp_path / "cache").glob("*.npz")
    corrupt(cache, how)
    with pytest.warns(UserWarning) as warned:
        again = data.load(str(folder))
    [warning] = warned
    assert str(cache) in str(warning.message) and "\n" not in str(warning.message)
    assert again.fingerprint == fresh.fingerprint and torch.equal(again.train_x, fresh.train_x)
    assert torch.equal(again.mean, fresh.mean) and again.classes == fresh.classes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt cache reads cleanly, without decoding
        monkeypatch.setattr(data, "_decode_image_folder", lambda path: pytest.fail("decoded again"))
        assert data.load(str(folder)).fingerprint == fresh.fingerprint


# --------------------------------------------------------------------------- nothing trusted unchecked

class _Planted:
    """A pickle that, when loaded by plain pickle, makes the folder ``marker``: code from data."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("planted", ["batches.meta", "data_batch_1"])
def test_a_crafted_pickle_in_a_cifar10_folder_runs_no_code(planted, tmp_path, small_cifar10, capsys):
    from bnlib.cli import main

    rng = np.random.default_rng(1)
    write_torchvision_folder(tmp_path / "tv", rng.permutation(np.arange(20) % 10), rng.permutation(10))
    marker = tmp_path / "code-ran"
    payload = {b"label_names": _Planted(marker)} if planted == "batches.meta" else \
        {b"data": _Planted(marker), b"labels": [0]}
    (tmp_path / "tv" / "cifar-10-batches-py" / planted).write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ConfigError, match=f"{planted}.*names posix.mkdir"):
        data.load(str(tmp_path / "tv"))
    for command in (["data", "reencode", "--quality", "50", str(tmp_path / "tv"), str(tmp_path / "out.tar.gz")],
                    ["train", "--data", str(tmp_path / "tv"), "--model", "resnet-8", "--epochs", "1",
                     "--runs-dir", str(tmp_path / "runs")]):
        assert main(command) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out.tar.gz").exists()


@pytest.mark.parametrize("meta", [[b"c0", b"c1"], {b"label_names": "c0"}, {b"other": 1}])
def test_a_malformed_batches_meta_is_one_line(meta, tmp_path, small_cifar10):
    rng = np.random.default_rng(1)
    write_torchvision_folder(tmp_path / "tv", rng.permutation(np.arange(20) % 10), rng.permutation(10))
    (tmp_path / "tv" / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps(meta))
    with pytest.raises(ConfigError, match="batches.meta") as error:
        data.load(str(tmp_path / "tv"))
    assert "\n" not in str(error.value)


def test_the_real_cifar10_pickle_layout_still_loads(tmp_path, small_cifar10):
    """Python 2's pickles (CIFAR-10's own) name numpy's array reconstruction and bytes: allowed."""
    rng = np.random.default_rng(1)
    write_torchvision_folder(tmp_path / "tv", rng.permutation(np.arange(20) % 10), rng.permutation(10))
    folder = tmp_path / "tv" / "cifar-10-batches-py"
    for name in ("data_batch_1", "batches.meta"):  # protocol 2, as the download holds them
        folder.joinpath(name).write_bytes(pickle.dumps(pickle.loads(folder.joinpath(name).read_bytes()), protocol=2))
    assert data.load(str(tmp_path / "tv")).classes[0] == "c0"


def write_jpeg_folder(root, classes, per_class, quality):
    for split, n in per_class.items():
        for cls, arrays in make_images(n, classes, seed=len(split)).items():
            (root / split / cls).mkdir(parents=True)
            for i, array in enumerate(arrays):
                Image.fromarray(array).save(root / split / cls / f"{i:04d}.jpg", quality=quality)
    return root


def test_jpeg_quality_and_cifar10_are_measured_not_read_from_the_name(tmp_path, small_cifar10):
    classes = [f"c{i}" for i in range(10)]
    # CIFAR-10's counts (2 and 1 per class here), encoded at 25 but named as the quality-50 copy
    lying = write_jpeg_folder(tmp_path / "cifar10-jpeg-q50", classes, {"train": 2, "test": 1}, quality=25)
    ds = data.load(str(lying))
    assert ds.jpeg_quality == 25 and ds.is_cifar10()
    assert data.describe_data(ds.describe()) == "CIFAR-10, JPEG copy re-encoded at quality 25"
    # two classes of random images, named like the JPEG copy: not CIFAR-10
    random = write_jpeg_folder(tmp_path / "random-jpeg", ["a", "b"], {"train": 3, "test": 2}, quality=75)
    described = data.load(str(random)).describe()
    assert described["data_cifar10"] is False and described["data_jpeg_quality"] == 75
    assert data.describe_data(described) == "image folder random-jpeg (JPEG quality 75)"
    write_image_folder(tmp_path / "png-jpeg")  # PNG files: no JPEG quality at all
    assert data.load(str(tmp_path / "png-jpeg")).jpeg_quality is None
    assert data.describe_data(data.load("synthetic").describe()) == "synthetic data (not CIFAR-10)"


def test_records_stored_before_measuring_are_labelled_by_fingerprint():
    copy = {"data_source": "image-folder-tar:renamed.tar.gz", "data_fingerprint": "e5a6a69fb244a8d8"}
    assert data.describe_data(copy) == "CIFAR-10, JPEG copy re-encoded at quality 50"
    assert data.data_identity({**copy, "data_fingerprint": "eec90e10bd2f5438"}) == (True, 75)
    # a row of a table mixing old and new records: the measured columns read NaN for the old
    assert data.data_identity({**copy, "data_cifar10": float("nan"), "data_jpeg_quality": float("nan")}) == (True, 50)


@pytest.mark.parametrize("quality", [10, 50, 75, 90])
def test_the_quality_estimate_inverts_the_encoder(quality):
    import io

    buffer = io.BytesIO()
    Image.fromarray(make_images(1, ["a"], seed=0)["a"][0]).save(buffer, format="JPEG", quality=quality)
    with Image.open(buffer) as image:
        assert data.estimate_quality(tuple(image.quantization[0])) == quality
