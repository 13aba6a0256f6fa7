"""``python -m bnlib bench``: bnlib's trainer against a plain reference loop, on one machine.

The reference is the textbook PyTorch recipe the authors' framework follows: a torchvision-style
``Dataset`` that turns each uint8 image into a PIL image, ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``, a shuffling ``DataLoader``, and
``zero_grad / forward / backward / step`` on an NCHW fp32 model. bnlib's side is the trainer's
own epoch function (data on the device as uint8, batch augmentation, the config's layout).
Both train the same network in the same mode with the same optimizer; the two are measured
alternately, so a busy machine slows both alike.
"""

from __future__ import annotations

import datetime
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from . import data as data_lib
from .config import RunConfig
from .freezing import PAPER_MODES, apply_trainable
from .models import build, fuse
from .packs import Pack, trains_convolutions

RESULTS = Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "results.jsonl"
SUITE_MODELS = ("resnet-14", "resnet-20", "resnet-56")  # the networks and modes of a plain `bench`
SUITE_MODES = ("bn", "all")


def random_dataset(n_train: int, n_test: int = 256, seed: int = 0) -> data_lib.Dataset:
    """CIFAR-shaped random pixels: speed does not depend on what the images show."""
    g = np.random.default_rng(seed)
    arrays = (g.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8), g.integers(0, 10, n_train),
              g.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8), g.integers(0, 10, n_test))
    return data_lib.from_arrays(*arrays, [str(i) for i in range(10)], source="synthetic:benchmark")


def _optimizer(model: torch.nn.Module, config: RunConfig) -> torch.optim.Optimizer | None:
    params = apply_trainable(model, config.train.trainable)
    t = config.train
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay) if params else None


def pack_modes(config: RunConfig, runs: int) -> list[str]:
    """The modes of a pack of ``runs`` runs as the planner builds one around ``config``'s mode:
    that mode first, then the paper's other modes that train convolutions exactly when it does
    (:func:`bnlib.packs.plan_packs`), in turn."""
    style = trains_convolutions(config)
    others = [m for m in dict.fromkeys(PAPER_MODES.values())
              if m != config.train.trainable and trains_convolutions(config.replace(trainable=m)) == style]
    cycle = [config.train.trainable, *others]
    return [cycle[i % len(cycle)] for i in range(runs)]


def bnlib_images_per_s(config: RunConfig, dataset: data_lib.Dataset, replicates: int = 1,
                       warmup: bool = False, modes: list[str] | None = None) -> float:
    """Training images per second of one epoch of ``dataset`` through the trainer's epoch
    function (all replicates counted when fused). ``modes``: one mode per replicate, a pack
    with the trainer's masked SGD (default: ``config``'s mode for each). With ``warmup``, one
    epoch runs first on the same network and only the second is timed: it pays for
    compilation, CUDA graph recording and cuDNN's algorithm search, which a new network would
    pay again."""
    from .train import _run_epoch, resolve_device

    device = resolve_device(config.train.device)
    nets = [build(config.model.model, seed=s) for s in range(replicates)]
    model = (nets[0] if replicates == 1 else fuse(nets)).to(device)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if replicates == 1:
        optimizer = _optimizer(model, config)
    else:
        t = config.train
        pack = Pack.of(model, modes or [t.trainable] * replicates)
        optimizer = pack.optimizer(model, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if config.train.compile != "none":
        model = torch.compile(model, mode=None if config.train.compile == "default" else config.train.compile)
    configs = [config.replace(seed=s) for s in range(replicates)]
    on_device = dataset.to(device)
    if warmup:
        _run_epoch(model, optimizer, on_device, configs, 0, progress=False)
    rows = _run_epoch(model, optimizer, on_device, configs, int(warmup), progress=False)
    return replicates * rows[0]["images_per_s"]


class _TorchvisionStyle(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images.transpose(0, 2, 3, 1), labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def reference_images_per_s(config: RunConfig, dataset: data_lib.Dataset, workers: int) -> float:
    """Training images per second of the textbook loop over the same images."""
    from torchvision import transforms

    from .train import resolve_device

    device = resolve_device(config.train.device)
    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(dataset.mean.tolist(), dataset.std.tolist()),
    ])
    loader = torch.utils.data.DataLoader(
        _TorchvisionStyle(dataset.train_x.numpy(), dataset.train_y.numpy(), transform),
        batch_size=config.train.batch_size, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
        persistent_workers=False)
    model = build(config.model.model).to(device).train()
    optimizer = _optimizer(model, config)
    started = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.set_grad_enabled(optimizer is not None):
            loss = F.cross_entropy(model(x), y)
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    loss.item()  # wait for the device
    return len(dataset.train_y) / (time.perf_counter() - started)


def training_flops_per_image(config: RunConfig, batch: int = 32) -> float:
    """Floating-point operations of one training step (forward and the backward the mode
    needs), per image, counted by PyTorch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build(config.model.model)
    optimizer = _optimizer(model, config)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        loss = F.cross_entropy(model(x), y)
        if optimizer is not None:
            loss.backward()
    return counter.get_total_flops() / batch


def matmul_flops_per_s(device: torch.device, n: int = 2048, seconds: float = 1.0) -> float:
    """The machine's measured dense fp32 matrix-multiply rate: the ceiling for the trainer."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    (a @ b).sum().item()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        c = a @ b
        count += 1
    c.sum().item()
    return 2 * n**3 * count / (time.perf_counter() - started)


def bench(model: str, trainable: str, *, steps: int = 20, rounds: int = 2, device: str = "auto",
          replicates: int = 1, channels_last: bool = True, precision: str = "fp32", compile: str = "none",
          workers: tuple[int, ...] = (0, 2), pack: int = 1, out: Path | None = RESULTS) -> dict[str, Any]:
    """Measure one network and mode; append the result (with hardware, torch version and date)
    to ``out`` as one JSON line, and return it. With ``pack`` > 1, also a pack of that many runs
    (:func:`pack_modes`: the mode measured and its pack mates), trained as one network: its
    images/s counts every run's images, and ``pack_speedup`` is that over one run's."""
    from .train import hardware, resolve_device

    config = RunConfig.from_flat(model=model, trainable=trainable, device=device, channels_last=channels_last,
                                 precision=precision, compile=compile, data="synthetic")
    dev = resolve_device(device)
    dataset = random_dataset(steps * config.train.batch_size)
    warm = random_dataset(3 * config.train.batch_size, seed=1)
    bnlib_images_per_s(config, warm, replicates)  # first calls pay for allocation, compilation
    modes = pack_modes(config, pack)
    if pack > 1:
        bnlib_images_per_s(config, warm, pack, modes=modes)
    ours, packed, reference = [], [], {w: [] for w in workers}
    for _ in range(rounds):  # alternate, so that noise from other processes hits both sides
        # A compiled network is new each round: time its second epoch, not its compilation.
        ours.append(bnlib_images_per_s(config, dataset, replicates, warmup=compile != "none"))
        if pack > 1:
            packed.append(bnlib_images_per_s(config, dataset, pack, warmup=compile != "none", modes=modes))
        for w in workers:
            reference[w].append(reference_images_per_s(config, dataset, w))
    best_workers = max(workers, key=lambda w: statistics.median(reference[w]))
    images_per_s = statistics.median(ours)
    reference_images = statistics.median(reference[best_workers])
    flops = training_flops_per_image(config)
    peak = matmul_flops_per_s(dev)
    row = {
        "model": model, "trainable": trainable, "replicates": replicates, "channels_last": channels_last,
        "precision": precision, "compile": compile, "steps": steps, "rounds": rounds,
        "images_per_s": round(images_per_s, 1),
        "reference_images_per_s": round(reference_images, 1),
        "reference_workers": best_workers,
        "reference_by_workers": {str(w): round(statistics.median(v), 1) for w, v in reference.items()},
        "ratio": round(images_per_s / reference_images, 3),
        "training_gflops_per_image": round(flops / 1e9, 4),
        "matmul_gflops_per_s": round(peak / 1e9, 1),
        "fraction_of_matmul_rate": round(images_per_s * flops / peak, 4),
        **({"pack": pack, "pack_modes": modes, "pack_images_per_s": round(statistics.median(packed), 1),
            "pack_speedup": round(statistics.median(packed) / images_per_s, 3)} if pack > 1 else {}),
        "device": str(dev), "hardware": hardware(dev), "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row
