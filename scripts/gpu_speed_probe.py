"""How much faster would torch.compile's CUDA graphs, or bf16, train the paper's ResNets on a GPU?

The one lease so far (scripts/paper_on_gpu.py) found eager fp32 training launch-bound: ResNet-14
at batch 128 ran about 18,000 images/s with one seed and 50,000 with five fused, so 160 epochs
of ResNet-32 did not fit in a lease. This probe measures the options, one epoch of random
images after a warm-up epoch on the same (compiled) network, and prints one JSON line each,
stopping at ``--seconds``. Run on the GPU machine: python3 scripts/gpu_speed_probe.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bnlib.bench import _optimizer, random_dataset  # noqa: E402
from bnlib.config import RunConfig  # noqa: E402
from bnlib.models import build, fuse  # noqa: E402
from bnlib.train import _run_epoch  # noqa: E402

VARIANTS = [  # (network, mode, compile, precision, fused seeds): the eager baseline first
    ("resnet-14", "bn", "none", "fp32", 1), ("resnet-14", "bn", "reduce-overhead", "fp32", 1),
    ("resnet-14", "bn", "none", "bf16", 1), ("resnet-32", "bn", "none", "fp32", 1),
    ("resnet-32", "bn", "reduce-overhead", "fp32", 1), ("resnet-14", "bn", "reduce-overhead", "fp32", 5),
]


def measure(network: str, mode: str, compile: str, precision: str, replicates: int, images: int,
            device: str) -> dict:
    config = RunConfig.from_flat(model=network, trainable=mode, device=device, compile=compile, precision=precision)
    nets = [build(network, seed=s) for s in range(replicates)]
    model = (nets[0] if replicates == 1 else fuse(nets)).to(device).to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, config)
    step = torch.compile(model, mode=compile) if compile != "none" else model
    dataset = random_dataset(images).to(device)
    configs = [config.replace(seed=s) for s in range(replicates)]
    started = time.time()
    _run_epoch(step, optimizer, dataset, configs, 0, progress=False)  # warm-up: compiles, records graphs
    warmup = time.time() - started
    row = _run_epoch(step, optimizer, dataset, configs, 1, progress=False)[0]
    return {"model": network, "trainable": mode, "compile": compile, "precision": precision,
            "replicates": replicates, "images_per_s": round(replicates * row["images_per_s"], 1),
            "warmup_s": round(warmup, 1), "hardware": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "torch": torch.__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--images", type=int, default=12800, help="images per measured epoch")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    start = time.time()
    for variant in VARIANTS:
        if time.time() - start > args.seconds:
            break
        try:
            print(json.dumps(measure(*variant, images=args.images, device=args.device)), flush=True)
        except Exception as error:  # a variant that fails is a result too
            print(json.dumps({"variant": variant, "error": f"{type(error).__name__}: {error}"[:300]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
