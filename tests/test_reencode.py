"""Re-encoding a data set as JPEG at another quality (the price of the JPEG copy, chapter 9)."""

import json

import numpy as np
import pytest

from bnlib import ConfigError, data
from bnlib.cli import main
from bnlib.reencode import reencode


def by_class(ds: data.Dataset, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images and labels in the order an image folder is read: by class, then by index."""
    x, y = getattr(ds, f"{split}_x").numpy(), getattr(ds, f"{split}_y").numpy()
    order = np.argsort(y, kind="stable")
    return x[order].astype(int), y[order]


def error(copy: data.Dataset, original: data.Dataset) -> float:
    return float(np.abs(by_class(copy)[0] - by_class(original)[0]).mean())


def test_a_reencoded_copy_keeps_images_labels_and_classes_and_loses_more_at_lower_quality(tmp_path):
    original = data.load("synthetic")
    copies = {q: data.load(str(reencode("synthetic", q, tmp_path / f"synthetic-q{q}.tar.gz"))) for q in (90, 25)}
    for copy in copies.values():
        assert copy.classes == original.classes
        for split in ("train", "test"):
            assert np.array_equal(by_class(copy, split)[1], by_class(original, split)[1])
        assert copy.train_x.shape == original.train_x.shape and copy.fingerprint != original.fingerprint
    assert 0 < error(copies[90], original) < error(copies[25], original)


def test_the_label_says_which_quality():
    assert data.describe_source("image-folder-tar:cifar10-jpeg.tar.gz") == "CIFAR-10, JPEG copy"
    assert data.describe_source("image-folder-tar:cifar10-jpeg-q50.tar.gz") == \
        "CIFAR-10, JPEG copy re-encoded at quality 50"


@pytest.mark.parametrize("quality", [0, 96, 50.5])
def test_bad_qualities_are_refused(quality, tmp_path):
    with pytest.raises(ConfigError, match="quality"):
        reencode("synthetic", quality, tmp_path / "x.tar.gz")


def test_the_command_prints_json_last(tmp_path, capsys):
    target = tmp_path / "out-q40.tar.gz"
    assert main(["data", "reencode", "--quality", "40", "synthetic", str(target)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["path"] == str(target) and out["quality"] == 40 and target.is_file()
    assert out["data_fingerprint"] == data.load(str(target)).fingerprint
    assert main(["data", "reencode", "--quality", "40", "synthetic", str(tmp_path / "x.zip")]) == 2


def test_reencode_never_overwrites_its_source_or_an_existing_file(tmp_path, capsys):
    source = reencode("synthetic", 40, tmp_path / "synthetic-q40.tar.gz")
    before = source.read_bytes()
    for destination in (source, tmp_path / "link-q40.tar.gz"):  # itself, and itself under another name
        if destination != source:
            destination.symlink_to(source)
        with pytest.raises(ConfigError, match="source itself"):
            reencode(str(source), 50, destination)
        with pytest.raises(ConfigError, match="source itself"):
            reencode(str(source), 50, destination, replace=True)
        assert main(["data", "reencode", "--quality", "50", str(source), str(destination)]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert source.read_bytes() == before
    other = tmp_path / "other-q25.tar.gz"
    other.write_bytes(b"keep me")
    with pytest.raises(ConfigError, match="exists.*--replace"):
        reencode(str(source), 25, other)
    assert other.read_bytes() == b"keep me"
    assert main(["data", "reencode", "--quality", "25", "--replace", str(source), str(other)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["measured_quality"] == 25 and data.load(str(other)).jpeg_quality == 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link-q40.tar.gz", "other-q25.tar.gz", "synthetic-q40.tar.gz"]


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from pathlib import Path

    def full_disk(self, payload):
        Path.write_text(self, "half")  # part of it written, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError):
        reencode("synthetic", 40, tmp_path / "out.tar.gz")
    assert list(tmp_path.iterdir()) == []
