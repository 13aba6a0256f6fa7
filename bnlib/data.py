"""CIFAR-10 (or a synthetic stand-in) as uint8 tensors, with augmentation on whole batches.

Sources, chosen by the ``data`` config field:

* ``cifar10``: torchvision's CIFAR-10 under the cache folder, downloaded when missing;
* a path to a torchvision CIFAR-10 folder (one holding ``cifar-10-batches-py``, or that folder);
* a path to an image folder ``train/<class>/*``, ``test/<class>/*`` or a ``.tar.gz`` of one,
  such as the JPEG re-encoding of CIFAR-10 (labels are the sorted class names, which for
  CIFAR-10 is its own label order);
* ``synthetic``: a small, seeded, learnable CIFAR-shaped data set for tests.

Each source is decoded once into a uint8 cache (``$BNLIB_CACHE``, default ``~/.cache/bnlib``)
together with a fingerprint of its pixels and labels, which every run records.
Augmentation follows Appendix B: random crop with 4-pixel zero padding and random horizontal
flip, as tensor operations on a whole batch on the training device.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
CACHE_VERSION = 2


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
        }


def describe_source(source: str) -> str:
    """A short label for a recorded ``data_source``, shown wherever a result is: results on
    the JPEG re-encoding of CIFAR-10 must say so (its pixels differ from the original)."""
    kind, _, where = str(source).partition(":")
    if kind == "synthetic":
        return "synthetic data (not CIFAR-10)"
    if kind == "torchvision":
        return "CIFAR-10"
    if "jpeg" in Path(where).name.lower() or "jpg" in Path(where).name.lower():
        return "CIFAR-10, JPEG copy"
    return f"image folder {Path(where).name}"


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
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return "image-folder-tar"
        raise ConfigError(f"data file {data!r} is not a .tar.gz of an image folder")
    if (path / "cifar-10-batches-py").is_dir() or (path / "data_batch_1").is_file():
        return "torchvision"
    if (path / "train").is_dir() and (path / "test").is_dir():
        return "image-folder"
    raise ConfigError(
        f"data folder {data!r} holds neither cifar-10-batches-py nor train/ and test/ image folders"
    )


def load(data: str) -> Dataset:
    """Load a source (see the module docstring), decoding it only the first time."""
    kind = check_source(data)
    if kind == "synthetic":
        return synthetic()
    if kind == "cifar10":
        root = cache_dir() / "cifar10-torchvision"
        if not (root / "cifar-10-batches-py" / "test_batch").is_file():
            _download_cifar10(root)
        data, kind = str(root), "torchvision"
    path = Path(data).expanduser().resolve()
    key = _source_key(path)
    cached = cache_dir() / f"{kind}-{key}.npz"
    if cached.is_file():
        return _read_cache(cached)
    arrays = _decode_torchvision(path) if kind == "torchvision" else _decode_image_folder(path)
    dataset = from_arrays(*arrays, source=f"{kind}:{path.name}")
    _write_cache(cached, dataset)
    return dataset


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
    classes = [c.decode() if isinstance(c, bytes) else c for c in _unpickle(folder / "batches.meta")["label_names"]]

    def read(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        batches = [_unpickle(folder / n) for n in names]
        x = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)
        y = np.concatenate([np.asarray(b["labels"]) for b in batches])
        return x.astype(np.uint8), y.astype(np.int64)

    train = read([f"data_batch_{i}" for i in range(1, 6)])
    test = read(["test_batch"])
    return (*train, *test, classes)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _decode_image_folder(path: Path) -> tuple[np.ndarray, ...]:
    """Decode ``train/<class>/*`` and ``test/<class>/*`` from a folder or a tar archive."""
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
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile():
                    add(member.name, lambda m=member: tar.extractfile(m).read())
    else:
        for file in path.rglob("*"):
            if file.is_file():
                add(str(file.relative_to(path.parent)), file.read_bytes)

    classes = sorted({cls for split, cls in found if split == "train"})
    test_classes = sorted({cls for split, cls in found if split == "test"})
    if not classes or test_classes != classes:
        raise ConfigError(f"{path}: train/ and test/ must hold image folders of the same classes")

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for label, cls in enumerate(classes):
            for file_name, blob in sorted(found[(name, cls)]):
                image = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
                if image.shape != (32, 32, 3):
                    raise ConfigError(f"{path}: {name}/{cls}/{file_name} is {image.shape[:2]}, not 32x32")
                images.append(image)
                labels.append(label)
        return np.stack(images).transpose(0, 3, 1, 2).copy(), np.asarray(labels, dtype=np.int64)

    return (*split("train"), *split("test"), classes)


def from_arrays(train_x, train_y, test_x, test_y, classes, source: str) -> Dataset:
    h = hashlib.sha256()
    for array in (train_x, train_y, test_x, test_y):
        h.update(np.ascontiguousarray(array).tobytes())
    # Normalisation constants from the training images themselves, one channel at a time
    # (float64 over the whole set at once would need gigabytes).
    mean, std = zip(*[(c.mean() / 255.0, c.std() / 255.0) for c in np.moveaxis(train_x, 1, 0).astype(np.float32)])
    return Dataset(
        torch.from_numpy(np.ascontiguousarray(train_x)), torch.from_numpy(train_y),
        torch.from_numpy(np.ascontiguousarray(test_x)), torch.from_numpy(test_y),
        list(classes), source, h.hexdigest()[:16],
        torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32),
    )


def _write_cache(path: Path, ds: Dataset) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # concurrent first decodes never share a file
    meta = json.dumps({"classes": ds.classes, "source": ds.source, "fingerprint": ds.fingerprint,
                       "mean": ds.mean.tolist(), "std": ds.std.tolist()})
    np.savez(tmp, train_x=ds.train_x.numpy(), train_y=ds.train_y.numpy(),
             test_x=ds.test_x.numpy(), test_y=ds.test_y.numpy(), meta=np.asarray(meta))
    os.replace(tmp, path)  # atomic: a killed decode never leaves a half-written cache


def _read_cache(path: Path) -> Dataset:
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        return Dataset(
            torch.from_numpy(z["train_x"]), torch.from_numpy(z["train_y"]),
            torch.from_numpy(z["test_x"]), torch.from_numpy(z["test_y"]),
            meta["classes"], meta["source"], meta["fingerprint"],
            torch.tensor(meta["mean"]), torch.tensor(meta["std"]),
        )


def synthetic(train_size: int = 1024, test_size: int = 256, seed: int = 1234) -> Dataset:
    """A learnable CIFAR-shaped data set: each class is a smooth random colour pattern, each
    image that pattern plus noise. Smooth, so crops and flips keep the class recognisable."""
    g = torch.Generator().manual_seed(seed)
    classes = [f"class{i}" for i in range(10)]
    coarse = torch.rand(10, 3, 4, 4, generator=g)
    patterns = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = torch.randint(0, 10, (n,), generator=g)
        x = 128 + 200 * (patterns[y] - 0.5) + 10 * torch.randn(n, 3, 32, 32, generator=g)
        return x.clamp(0, 255).to(torch.uint8).numpy(), y.numpy()

    return from_arrays(*draw(train_size), *draw(test_size), classes, source=f"synthetic:seed={seed}")


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
