"""CIFAR-10 (or a synthetic stand-in) as uint8 tensors, with augmentation on whole batches.

Sources, chosen by the ``data`` config field:

* ``cifar10``: torchvision's CIFAR-10 under the cache folder, downloaded when missing;
* a path to a torchvision CIFAR-10 folder (one holding ``cifar-10-batches-py``, or that folder);
* a path to an image folder ``train/<class>/*``, ``test/<class>/*`` or a ``.tar.gz`` of one,
  such as the JPEG re-encoding of CIFAR-10 (labels are the sorted class names, which for
  CIFAR-10 is its own label order);
* ``synthetic``: a small, seeded, learnable CIFAR-shaped data set for tests.

Each source is checked before any training (:func:`check_contents`): an archive must end
properly (a cut download is refused, not trained on), a source that claims to be CIFAR-10 (by its
kind or a name such as ``cifar10-jpeg.tar.gz``) must hold CIFAR-10's 10 classes of 32x32 RGB
images, 5,000 train and 1,000 test per class, and any other image folder at least two classes of
images of one size. :func:`summary` says what a data set holds.

Each source is decoded once into a uint8 cache (``$BNLIB_CACHE``, default ``~/.cache/bnlib``)
together with a fingerprint of its pixels and labels, which every run records. A cache that
cannot be read or no longer matches its fingerprint is deleted, with a warning, and the source
decoded again.
Augmentation follows Appendix B: random crop with 4-pixel zero padding and random horizontal
flip, as tensor operations on a whole batch on the training device.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import math
import os
import pickle
import re
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
CACHE_VERSION = 3  # 3: the cache records the JPEG quality measured from the files
GZIP_MAGIC = b"\x1f\x8b"
# What a source that claims to be CIFAR-10 must hold (Krizhevsky, 2009).
CIFAR10_CLASSES = 10
CIFAR10_SIZE = (32, 32)
CIFAR10_PER_CLASS = {"train": 5000, "test": 1000}


class DataUnavailable(ConfigError):
    """The requested data cannot be found or fetched."""


@dataclass
class Dataset:
    train_x: torch.Tensor  # uint8, (N, 3, 32, 32)
    train_y: torch.Tensor  # int64, (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    source: str  # what was read, e.g. "image-folder:/path/cifar10-jpeg.tar.gz"
    fingerprint: str  # sha256 prefix over pixels and labels of both splits
    mean: torch.Tensor  # per-channel mean of the training images, in [0, 1] units
    std: torch.Tensor  # per-channel standard deviation, likewise
    jpeg_quality: int | None = None  # the encoder's quality, estimated from the files (None: not JPEG)

    def is_cifar10(self) -> bool:
        """Whether it holds what CIFAR-10 holds, counted: 10 classes of 32x32 RGB images, 5,000
        train and 1,000 test per class (whatever its name says)."""
        if len(self.classes) != CIFAR10_CLASSES or tuple(self.train_x.shape[1:]) != (3, *CIFAR10_SIZE):
            return False
        return all((_counts(y.cpu(), CIFAR10_CLASSES) == CIFAR10_PER_CLASS[split]).all()
                   for split, y in (("train", self.train_y), ("test", self.test_y)))

    def to(self, device: torch.device | str) -> "Dataset":
        tensors = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: v.to(device) for k, v in tensors.items() if isinstance(v, torch.Tensor)})

    def describe(self) -> dict[str, object]:
        kind, _, where = self.source.partition(":")
        return {
            # the file or folder name, never a path of the machine that read it
            "data_source": f"{kind}:{Path(where).name}" if where else kind,
            "data_fingerprint": self.fingerprint,
            "train_images": int(self.train_x.shape[0]),
            "test_images": int(self.test_x.shape[0]),
            "channel_mean": [round(v, 6) for v in self.mean.tolist()],
            "channel_std": [round(v, 6) for v in self.std.tolist()],
            # measured, not read from a name: what labels a result (describe_data)
            "data_jpeg_quality": self.jpeg_quality,
            "data_cifar10": self.is_cifar10(),
        }


def describe_source(source: str) -> str:
    """A short label for a recorded ``data_source`` alone, from its kind and name: for records
    stored before data sets were measured. Wherever the whole record is at hand,
    :func:`describe_data` labels it from what was measured."""
    kind, _, where = str(source).partition(":")
    if kind == "synthetic":
        return "synthetic data (not CIFAR-10)"
    if kind == "torchvision":
        return "CIFAR-10"
    quality = jpeg_quality(source)
    if quality is not None:
        return "CIFAR-10, JPEG copy" + ("" if quality == COPY_QUALITY else f" re-encoded at quality {quality}")
    return f"image folder {Path(where).name}"


COPY_QUALITY = 75  # the JPEG copy of CIFAR-10: IJG quality 75, 4:2:0 chroma (its README)


def jpeg_quality(source: str) -> int | None:
    """The JPEG quality of a recorded ``data_source``: a re-encoding's (``...-q50.tar.gz``), the
    copy's 75, or None for data that is not a JPEG copy."""
    kind, _, where = str(source).partition(":")
    name = Path(where).name.lower()
    quality = re.search(r"-q(\d+)\b", name)
    if quality:
        return int(quality.group(1))
    return COPY_QUALITY if ("jpeg" in name or "jpg" in name) else None


# Data sets measured when the committed runs on them were stored, by the fingerprint of their
# pixels and labels: their JPEG quality (the encoder's, from the files' quantisation tables) and
# CIFAR-10's counts. Records written before data sets were measured are labelled from here.
MEASURED = {
    "eec90e10bd2f5438": (True, COPY_QUALITY),  # the JPEG copy of CIFAR-10 (cifar10-jpeg.tar.gz)
    "e5a6a69fb244a8d8": (True, 50),  # the copy re-encoded at quality 50 (bnlib data reencode)
    "6e71544909b112db": (True, 25),  # and at 25
}


def _given(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def data_identity(record) -> tuple[bool, int | None]:
    """(whether it is CIFAR-10, its JPEG quality or None) of a run's record (``config.json``,
    ``result.json`` or a row of :func:`bnlib.results.load`): what was measured from the data
    when the run was stored, else what :data:`MEASURED` knows of its fingerprint, else (a
    record older than both) what its source's kind and name say."""
    if _given(record.get("data_cifar10")):
        quality = record.get("data_jpeg_quality")
        return bool(record["data_cifar10"]), int(quality) if _given(quality) else None
    if record.get("data_fingerprint") in MEASURED:
        return MEASURED[record["data_fingerprint"]]
    source = str(record.get("data_source", ""))
    quality = jpeg_quality(source)
    return source.partition(":")[0] == "torchvision" or quality is not None, quality


def describe_data(record) -> str:
    """The label of the data a run read, shown wherever its result is (results on the JPEG
    re-encoding of CIFAR-10 must say so: its pixels differ from the original), from
    :func:`data_identity`: "CIFAR-10", "CIFAR-10, JPEG copy", "CIFAR-10, JPEG copy re-encoded
    at quality 50", "synthetic data (not CIFAR-10)" or "image folder NAME"."""
    kind, _, where = str(record.get("data_source", "")).partition(":")
    if kind == "synthetic":
        return "synthetic data (not CIFAR-10)"
    cifar10, quality = data_identity(record)
    if not cifar10:
        return f"image folder {Path(where).name}" + (f" (JPEG quality {quality})" if quality is not None else "")
    if quality is None:
        return "CIFAR-10"
    return "CIFAR-10, JPEG copy" + ("" if quality == COPY_QUALITY else f" re-encoded at quality {quality}")


@functools.lru_cache(maxsize=None)
def _quality_of_tables() -> dict[tuple[int, ...], int]:
    """The luminance quantisation table this machine's JPEG encoder writes at each quality
    1..100, to that quality (the lowest, where low qualities share a clamped table)."""
    from PIL import Image

    tables: dict[tuple[int, ...], int] = {}
    for quality in range(1, 101):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, format="JPEG", quality=quality)
        with Image.open(buffer) as image:
            tables.setdefault(tuple(image.quantization[0]), quality)
    return tables


def estimate_quality(table: tuple[int, ...]) -> int:
    """The encoder's quality behind a luminance quantisation table: the quality whose standard
    (IJG) table it is, or the nearest one for an encoder that scales tables its own way."""
    known = _quality_of_tables()
    if table in known:
        return known[table]
    return min(known.items(), key=lambda item: sum(abs(a - b) for a, b in zip(item[0], table)))[1]


def reencoded(source: str) -> bool:
    """Whether a recorded ``data_source`` is the JPEG copy re-encoded again at another quality
    (the runs that measure what JPEG costs): runs on it answer no claim about CIFAR-10."""
    quality = jpeg_quality(source)
    return quality is not None and quality != COPY_QUALITY


def default_real_data() -> str:
    """The real data a CPU-scale profile reads: $BNLIB_DATA, else the JPEG copy of CIFAR-10
    beside the project (``../shared/data/cifar10-jpeg.tar.gz``), else torchvision's CIFAR-10
    (downloaded where the network allows)."""
    copy = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
    return os.environ.get("BNLIB_DATA") or (str(copy) if copy.is_file() else "cifar10")


def cache_dir() -> Path:
    return Path(os.environ.get("BNLIB_CACHE", Path.home() / ".cache" / "bnlib"))


# --------------------------------------------------------------------------- sources

def check_source(data: str) -> str:
    """Validate ``data`` without decoding anything; return its kind. Raises ConfigError."""
    if data in ("synthetic", "cifar10"):
        return data
    path = Path(data).expanduser()
    if not path.exists():
        raise ConfigError(f"data path {data!r} does not exist")
    if path.is_file():
        if not path.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise ConfigError(f"data file {data!r} is not a .tar.gz of an image folder")
        # Cheap checks here; whether the archive ends properly is checked when it is decoded.
        with open(path, "rb") as f:
            magic = f.read(2)
        if not magic:
            raise ConfigError(f"data file {data!r} is empty, not an archive")
        if path.name.endswith((".gz", ".tgz")) and magic != GZIP_MAGIC:
            raise ConfigError(f"data file {data!r} is not gzip-compressed, though its name says it is")
        return "image-folder-tar"
    if (path / "cifar-10-batches-py").is_dir() or (path / "data_batch_1").is_file():
        return "torchvision"
    if (path / "train").is_dir() and (path / "test").is_dir():
        return "image-folder"
    raise ConfigError(
        f"data folder {data!r} holds neither cifar-10-batches-py nor train/ and test/ image folders"
    )


def load(data: str) -> Dataset:
    """Load a source (see the module docstring), decoding it only the first time, and check
    what it holds (:func:`check_contents`). Raises ConfigError with one line naming the source."""
    kind = check_source(data)
    if kind == "synthetic":
        return synthetic()
    if kind == "cifar10":
        root = cache_dir() / "cifar10-torchvision"
        if not (root / "cifar-10-batches-py" / "test_batch").is_file():
            _download_cifar10(root)
        data, kind = str(root), "torchvision"
    path = Path(data).expanduser().resolve()
    cifar10 = claims_cifar10(kind, path)
    key = _source_key(path)
    cached = cache_dir() / f"{kind}-{key}.npz"
    dataset = _read_cache(cached) if cached.is_file() else None
    if dataset is not None:
        # Cheap (label counts and shapes), and catches a cache written before these checks.
        check_contents(dataset.train_x, dataset.train_y, dataset.test_x, dataset.test_y, dataset.classes,
                       str(path), cifar10)
        return dataset
    *arrays, quality = _decode_torchvision(path) if kind == "torchvision" else _decode_image_folder(path)
    check_contents(*arrays, str(path), cifar10)
    dataset = dataclasses.replace(from_arrays(*arrays, source=f"{kind}:{path.name}"), jpeg_quality=quality)
    _write_cache(cached, dataset)
    return dataset


def claims_cifar10(kind: str, path: Path) -> bool:
    """Whether a source says it is CIFAR-10: torchvision's CIFAR-10 files, or a file or folder
    named like ``cifar10-jpeg.tar.gz`` or ``cifar-10`` (but not ``cifar100``)."""
    return kind in ("cifar10", "torchvision") or re.search(r"cifar[-_]?10(?!\d)", path.name.lower()) is not None


def _counts(labels, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels).astype(np.int64, copy=False)
    return np.bincount(labels[(labels >= 0) & (labels < n_classes)], minlength=n_classes)


def _split_text(counts: np.ndarray) -> str:
    if not len(counts):
        return "0"
    low, high = int(counts.min()), int(counts.max())
    per_class = f"{low:,} per class" if low == high else f"{low:,} to {high:,} per class"
    return f"{int(counts.sum()):,} ({per_class})"


def _summary(train_y, test_y, n_classes: int) -> str:
    return (f"{n_classes} classes; train {_split_text(_counts(train_y, n_classes))}; "
            f"test {_split_text(_counts(test_y, n_classes))}")


def summary(dataset: Dataset) -> str:
    """What a data set holds, in one line, e.g.
    "10 classes; train 50,000 (5,000 per class); test 10,000 (1,000 per class)"."""
    return _summary(dataset.train_y.cpu(), dataset.test_y.cpu(), len(dataset.classes))


def check_contents(train_x, train_y, test_x, test_y, classes, where: str, cifar10: bool = False) -> None:
    """Refuse, with one line naming ``where`` and saying what it holds, a data set a run cannot
    use: fewer than two classes, labels outside the classes, a class missing from a split,
    images that are not (N, 3, H, W) uint8 of one size; and, when the source claims to be
    CIFAR-10 (``cifar10``), anything but 10 classes of 32x32 RGB images with 5,000 train and
    1,000 test images per class. Arrays or tensors; only shapes and labels are read."""
    n = len(classes)
    holds = _summary(train_y, test_y, n)
    sizes = []
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        shape, labels = tuple(x.shape), np.asarray(y)
        if len(shape) != 4 or shape[1] != 3 or shape[0] != len(labels) or str(x.dtype).rpartition(".")[2] != "uint8":
            raise ConfigError(f"{where}: {split} images are {shape} of {x.dtype} for {len(labels)} labels, "
                              "not (N, 3, H, W) uint8 RGB images with one label each")
        if len(labels) and (labels.min() < 0 or labels.max() >= n):
            raise ConfigError(f"{where}: {split} labels run from {labels.min()} to {labels.max()}, "
                              f"outside the {n} classes")
        sizes.append(shape[2:])
    if sizes[0] != sizes[1]:
        raise ConfigError(f"{where}: train images are {_size(sizes[0])} but test images {_size(sizes[1])}")
    if cifar10:
        expected = (f"a CIFAR-10 source must hold {CIFAR10_CLASSES} classes of {_size(CIFAR10_SIZE)} RGB images, "
                    f"{CIFAR10_PER_CLASS['train']:,} train and {CIFAR10_PER_CLASS['test']:,} test per class")
        if n != CIFAR10_CLASSES:
            raise ConfigError(f"{where}: {expected}; it holds {holds}")
        if sizes[0] != CIFAR10_SIZE:
            raise ConfigError(f"{where}: {expected}; its images are {_size(sizes[0])} ({holds})")
        for split, y in (("train", train_y), ("test", test_y)):
            counts = _counts(y, n)
            wrong = [i for i in range(n) if counts[i] != CIFAR10_PER_CLASS[split]]
            if wrong:
                raise ConfigError(f"{where}: {expected}; it holds {holds} ({split} {classes[wrong[0]]} has "
                                  f"{int(counts[wrong[0]]):,}; a download or copy cut short?)")
        return
    if n < 2:
        raise ConfigError(f"{where}: a data set needs at least 2 classes; it holds {holds}")
    for split, y in (("train", train_y), ("test", test_y)):
        counts = _counts(y, n)
        if counts.min() == 0:
            raise ConfigError(f"{where}: class {classes[int(counts.argmin())]} has no {split} images; it holds {holds}")


def _size(hw) -> str:
    return f"{hw[1]}x{hw[0]}"  # width x height, as image tools say it


def _download_cifar10(root: Path) -> None:
    try:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)
    except Exception as error:  # no network, a proxy, a checksum failure: all end the same way
        raise DataUnavailable(
            f"CIFAR-10 is not in {root} and could not be downloaded ({type(error).__name__}); "
            "pass --data PATH to a torchvision CIFAR-10 folder, an image folder or its .tar.gz "
            "(e.g. ../shared/data/cifar10-jpeg.tar.gz), or --data synthetic"
        ) from None


def _source_key(path: Path) -> str:
    """Cheap identity of a source on disk (path, names, sizes, mtimes) to find its cache."""
    h = hashlib.sha256(f"{CACHE_VERSION}:{path}".encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(path.parent)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _decode_torchvision(path: Path) -> tuple[np.ndarray, ...]:
    folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
    names = _unpickle(folder / "batches.meta").get("label_names")
    if not isinstance(names, list) or not all(isinstance(c, (bytes, str)) for c in names):
        raise ConfigError(f"{folder / 'batches.meta'}: holds no list of label_names (not CIFAR-10's batches.meta)")
    classes = [c.decode(errors="replace") if isinstance(c, bytes) else c for c in names]

    def read(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        batches = [_unpickle(folder / n) for n in names]
        x = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)
        y = np.concatenate([np.asarray(b["labels"]) for b in batches])
        return x.astype(np.uint8), y.astype(np.int64)

    try:
        train = read([f"data_batch_{i}" for i in range(1, 6)])
        test = read(["test_batch"])
    except (KeyError, ValueError, TypeError) as error:  # a batch of the wrong shape or keys
        raise ConfigError(f"{folder}: CIFAR-10 batch files of the wrong layout ({_one_line(error)})") from None
    return (*train, *test, classes, None)  # raw pixels: no JPEG quality


# What CIFAR-10's pickled batches hold: dicts, lists, strings, bytes and numbers (pickle builds
# those without any global) and numpy arrays, which need these. Python 3 pickles of bytes at
# protocol 2 go through _codecs.encode. Nothing else is found: a pickle names the callables it
# runs, so a data set that names any other one is refused before it runs.
_CIFAR10_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR10_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch never holds")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    """A CIFAR-10 batch file, through :class:`_CifarUnpickler`: reading a data set never runs
    code from it."""
    try:
        with open(path, "rb") as f:
            raw = _CifarUnpickler(f, encoding="bytes").load()
        if not isinstance(raw, dict):
            raise ValueError(f"it holds a {type(raw).__name__}, not a dict")
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
    except Exception as error:  # missing, cut short, not a pickle, foreign code: one message for all
        raise ConfigError(f"{path}: not a readable CIFAR-10 batch file ({_one_line(error)})") from None


def _decode_image_folder(path: Path) -> tuple:
    """Decode ``train/<class>/*`` and ``test/<class>/*`` from a folder or a tar archive: the
    arrays, the classes and the JPEG quality of its images (:func:`estimate_quality` of their
    most common luminance table; None when none is a JPEG)."""
    from PIL import Image

    found: dict[tuple[str, str], list[tuple[str, bytes]]] = {}

    def add(relative: str, read) -> None:
        parts = relative.replace("\\", "/").split("/")
        # accept a leading top-level folder (archive/train/cat/1.jpg) as well as train/cat/1.jpg
        for i in range(len(parts) - 2):
            if parts[i] in ("train", "test") and len(parts) - i == 3:
                if parts[-1].lower().endswith(IMAGE_SUFFIXES):
                    found.setdefault((parts[i], parts[i + 1]), []).append((parts[-1], read()))
                return

    if path.is_file():
        for name, blob in _tar_files(path):
            add(name, lambda: blob)
    else:
        for file in path.rglob("*"):
            if file.is_file():
                add(str(file.relative_to(path.parent)), file.read_bytes)

    classes = sorted({cls for split, cls in found if split == "train"})
    test_classes = sorted({cls for split, cls in found if split == "test"})
    if not found:
        raise ConfigError(f"{path}: holds no images under train/<class>/ and test/<class>/")
    if test_classes != classes:
        only_train = sorted(set(classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(classes))
        raise ConfigError(
            f"{path}: train/ and test/ must hold image folders of the same classes; train/ has "
            f"{len(classes)}, test/ has {len(test_classes)}"
            + (f"; only in train/: {', '.join(only_train[:5])}" if only_train else "")
            + (f"; only in test/: {', '.join(only_test[:5])}" if only_test else ""))
    size: tuple[tuple[int, int], str] | None = None  # the first image's (width, height) and name
    tables: collections.Counter = collections.Counter()  # luminance quantisation tables of the JPEGs

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        nonlocal size
        images, labels = [], []
        for label, cls in enumerate(classes):
            for file_name, blob in sorted(found[(name, cls)]):
                where = f"{name}/{cls}/{file_name}"
                try:
                    with Image.open(io.BytesIO(blob)) as opened:
                        if opened.format == "JPEG" and getattr(opened, "quantization", None):
                            tables[tuple(opened.quantization[0])] += 1
                        image = opened.convert("RGB")
                        image.load()
                except Exception as error:  # truncated, not an image, an unknown mode
                    raise ConfigError(f"{path}: {where} is not a readable RGB image ({_one_line(error)})") from None
                if size is None:
                    size = (image.size, where)
                elif image.size != size[0]:
                    raise ConfigError(f"{path}: {where} is {image.size[0]}x{image.size[1]} but {size[1]} is "
                                      f"{size[0][0]}x{size[0][1]}; every image must have one size")
                images.append(np.asarray(image))
                labels.append(label)
        return np.stack(images).transpose(0, 3, 1, 2).copy(), np.asarray(labels, dtype=np.int64)

    arrays = (*split("train"), *split("test"))
    return (*arrays, classes, estimate_quality(tables.most_common(1)[0][0]) if tables else None)


def _tar_files(path: Path) -> list[tuple[str, bytes]]:
    """The regular files of a ``.tar`` or ``.tar.gz``, read in memory (never extracted to disk),
    after checking that the archive ends properly: a gzip stream that is complete and intact,
    and a tar that ends with its two zero blocks. ``tarfile`` alone stops silently at a tar cut
    exactly between two members, so a cut download would otherwise load as a smaller data set."""
    raw = path.read_bytes()  # the whole archive: 20 MB for CIFAR-10 as JPEG, 93 MB unpacked
    if not raw:
        raise ConfigError(f"{path}: empty file, not an archive")
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise ConfigError(f"{path}: the gzip stream is cut short (a truncated download or copy?)") from None
        except (OSError, zlib.error) as error:  # BadGzipFile is an OSError; also a bad CRC or length
            raise ConfigError(f"{path}: damaged gzip stream ({_one_line(error)})") from None
    elif path.name.endswith((".gz", ".tgz")):
        raise ConfigError(f"{path}: not gzip-compressed, though its name says it is")
    files = []
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    files.append((member.name, tar.extractfile(member).read()))
            end = tar.offset  # where the header after the last member was looked for
    except tarfile.TarError as error:
        raise ConfigError(f"{path}: not a readable tar archive ({_one_line(error)})") from None
    marker = bytes(2 * tarfile.BLOCKSIZE)
    if raw[end:end + len(marker)] != marker:
        raise ConfigError(f"{path}: the archive stops after {len(files):,} files without its end-of-archive "
                          "marker (a truncated download or copy?)")
    return files


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def fingerprint(train_x, train_y, test_x, test_y) -> str:
    """sha256 prefix over the pixels and labels of both splits, as every run records it."""
    h = hashlib.sha256()
    for array in (train_x, train_y, test_x, test_y):
        h.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # the bytes of tobytes(), no copy
    return h.hexdigest()[:16]


def from_arrays(train_x, train_y, test_x, test_y, classes, source: str) -> Dataset:
    # Normalisation constants from the training images themselves, one channel at a time
    # (float64 over the whole set at once would need gigabytes).
    mean, std = zip(*[(c.mean() / 255.0, c.std() / 255.0) for c in np.moveaxis(train_x, 1, 0).astype(np.float32)])
    return Dataset(
        torch.from_numpy(np.ascontiguousarray(train_x)), torch.from_numpy(train_y),
        torch.from_numpy(np.ascontiguousarray(test_x)), torch.from_numpy(test_y),
        list(classes), source, fingerprint(train_x, train_y, test_x, test_y),
        torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32),
    )


def _write_cache(path: Path, ds: Dataset) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # concurrent first decodes never share a file
    meta = json.dumps({"classes": ds.classes, "source": ds.source, "fingerprint": ds.fingerprint,
                       "mean": ds.mean.tolist(), "std": ds.std.tolist(), "jpeg_quality": ds.jpeg_quality})
    np.savez(tmp, train_x=ds.train_x.numpy(), train_y=ds.train_y.numpy(),
             test_x=ds.test_x.numpy(), test_y=ds.test_y.numpy(), meta=np.asarray(meta))
    os.replace(tmp, path)  # atomic: a killed decode never leaves a half-written cache


def _read_cache(path: Path) -> Dataset | None:
    """The cached data set, or None after deleting a cache that cannot be read or whose pixels
    and labels no longer match the fingerprint it records (recomputing it takes a fraction of a
    second for CIFAR-10), so that the caller decodes the source again."""
    try:
        with open(path, "rb") as f, np.load(f) as z:  # np.load(path) leaks the file when it is not a zip
            meta = json.loads(str(z["meta"]))
            arrays = [z[k] for k in ("train_x", "train_y", "test_x", "test_y")]
        dataset = Dataset(
            *(torch.from_numpy(a) for a in arrays),
            [str(c) for c in meta["classes"]], str(meta["source"]), str(meta["fingerprint"]),
            torch.tensor(meta["mean"], dtype=torch.float32), torch.tensor(meta["std"], dtype=torch.float32),
            None if meta["jpeg_quality"] is None else int(meta["jpeg_quality"]),
        )
        if not all(a.dtype == t for a, t in zip(arrays, (np.uint8, np.int64) * 2)) or dataset.mean.shape != (3,) \
                or dataset.std.shape != (3,):
            problem = "its arrays have the wrong types or shapes"
        elif fingerprint(*arrays) != dataset.fingerprint:
            problem = "its pixels and labels do not match the fingerprint it records"
        else:
            return dataset
    except Exception as error:  # cut short, not a zip, a missing key, bad metadata
        problem = f"it cannot be read: {_one_line(error)}"
    warnings.warn(f"bnlib: the decode cache {path} is damaged ({problem}); deleting it and decoding the "
                  "data again", stacklevel=3)
    try:
        path.unlink()
    except OSError:
        pass  # another process removed or replaced it; decoding again rewrites it atomically
    return None


def synthetic(train_size: int = 1024, test_size: int = 256, seed: int = 1234, num_classes: int = 10) -> Dataset:
    """A learnable CIFAR-shaped data set: each class is a smooth random colour pattern, each
    image that pattern plus noise. Smooth, so crops and flips keep the class recognisable."""
    if num_classes < 2:
        raise ConfigError(f"a data set needs at least 2 classes, got {num_classes}")
    g = torch.Generator().manual_seed(seed)
    classes = [f"class{i}" for i in range(num_classes)]
    coarse = torch.rand(num_classes, 3, 4, 4, generator=g)
    patterns = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = 128 + 200 * (patterns[y] - 0.5) + 10 * torch.randn(n, 3, 32, 32, generator=g)
        return x.clamp(0, 255).to(torch.uint8).numpy(), y.numpy()

    source = f"synthetic:seed={seed}" + (f",classes={num_classes}" if num_classes != 10 else "")
    return from_arrays(*draw(train_size), *draw(test_size), classes, source=source)


# --------------------------------------------------------------------------- batches

def _generator(seed: int, epoch: int, purpose: str) -> torch.Generator:
    """A CPU generator for one epoch's randomness, so any epoch can be replayed on resume."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{purpose}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip of a whole uint8 batch, on its device.

    Image i is padded by ``pad`` zeros on every side, cut at rows ``dy[i]:dy[i]+H`` and columns
    ``dx[i]:dx[i]+W``, then mirrored if ``flip[i]``: one gather, no per-image Python loop.
    """
    n, c, h, w = x.shape
    padded = x.new_zeros(n, c, h + 2 * pad, w + 2 * pad)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    rows = dy[:, None] + torch.arange(h, device=x.device)
    cols = dx[:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255.0 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def train_batches(
    ds: Dataset, batch_size: int, seed: int, epoch: int, augment: bool = True
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of normalised, augmented batches in a seeded order. The last, smaller
    batch is kept (391 steps per CIFAR-10 epoch, as in the authors' framework)."""
    n = ds.train_x.shape[0]
    device = ds.train_x.device
    g = _generator(seed, epoch, "data")
    order = torch.randperm(n, generator=g).to(device)
    if augment:
        shifts = torch.randint(0, 9, (2, n), generator=g).to(device)
        flips = (torch.rand(n, generator=g) < 0.5).to(device)
    for start in range(0, n, batch_size):
        if n - start == 1 and start:  # BatchNorm cannot normalise a batch of one image: drop it
            break
        index = order[start:start + batch_size]
        x = ds.train_x[index]
        if augment:
            x = crop_flip(x, shifts[0, start:start + len(index)], shifts[1, start:start + len(index)],
                          flips[start:start + len(index)])
        yield normalize(x, ds.mean, ds.std), ds.train_y[index]


def test_batches(ds: Dataset, batch_size: int = 1000) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, ds.test_x.shape[0], batch_size):
        yield normalize(ds.test_x[start:start + batch_size], ds.mean, ds.std), ds.test_y[start:start + batch_size]
