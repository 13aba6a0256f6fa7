"""Re-encode an image data set as JPEG at another quality: the price of the JPEG copy.

The CIFAR-10 this project can read offline is a JPEG re-encoding (quality 75, 4:2:0 chroma
subsampling). Training on copies re-encoded at lower qualities (50, 25) measures how accuracy
moves with quality, so that the copy's cost against the original images can be estimated
(chapter 9). The output is an image-folder ``.tar.gz`` (``train/<class>/*.jpg``,
``test/<class>/*.jpg``) built in memory and written once, atomically.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from . import data as data_lib
from .errors import ConfigError


def default_destination(source: str, quality: int) -> Path:
    """Where a re-encoding goes unless told: the data cache (never the repository)."""
    stem = Path(source).name.split(".")[0] if source not in ("cifar10", "synthetic") else source
    return data_lib.cache_dir() / "reencoded" / f"{stem}-q{quality}.tar.gz"


def encode(image: np.ndarray, quality: int) -> bytes:
    """One (3, H, W) uint8 image as a JPEG at ``quality`` with 4:2:0 chroma, as the copy is."""
    buffer = io.BytesIO()
    Image.fromarray(image.transpose(1, 2, 0)).save(buffer, format="JPEG", quality=quality, subsampling=2)
    return buffer.getvalue()


def check_destination(source: str, destination: Path, replace: bool = False) -> None:
    """Refuse to write over the source (which would be read and destroyed at once) or, unless
    ``replace``, over any existing file: a data set is never replaced by accident."""
    if not destination.name.endswith(".tar.gz"):
        raise ConfigError(f"destination {str(destination)!r} must end in .tar.gz")
    if source not in ("cifar10", "synthetic") and destination.exists() and Path(source).exists() \
            and os.path.samefile(source, destination):
        raise ConfigError(f"destination {str(destination)!r} is the source itself: write the copy elsewhere")
    if destination.exists() and not (replace and destination.is_file()):
        raise ConfigError(f"destination {str(destination)!r} exists"
                          + ("" if destination.is_file() else " and is not a file")
                          + ": choose another, or pass --replace to write over it")


def reencode(source: str, quality: int, destination: str | Path | None = None, replace: bool = False) -> Path:
    """Decode ``source`` (any source :func:`bnlib.data.load` reads) and write every image again
    as JPEG at ``quality`` into an image-folder ``.tar.gz``; returns its path. An existing
    destination is refused unless ``replace`` (the source itself always is)."""
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 95:
        raise ConfigError(f"quality must be a whole number in 1..95 (PIL's useful range), got {quality!r}")
    destination = Path(destination) if destination else default_destination(source, quality)
    check_destination(source, destination, replace)
    dataset = data_lib.load(source)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for split, xs, ys in (("train", dataset.train_x, dataset.train_y), ("test", dataset.test_x, dataset.test_y)):
            for index, (x, y) in enumerate(zip(xs.numpy(), ys.tolist())):
                blob = encode(x, quality)
                info = tarfile.TarInfo(f"{split}/{dataset.classes[y]}/{index:05d}.jpg")
                info.size, info.mtime = len(blob), 0  # no time of this machine in the archive
                tar.addfile(info, io.BytesIO(blob))
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(destination.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, destination)  # atomic: a reader sees no copy or the whole copy
    finally:
        tmp.unlink(missing_ok=True)  # a full disk or an interruption leaves no partial file behind
    return destination
