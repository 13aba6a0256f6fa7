"""How much faster would torch.compile's CUDA graphs, or bf16, train the paper's ResNets on a GPU?

The one lease so far (scripts/paper_on_gpu.py) found eager fp32 training launch-bound: ResNet-14
at batch 128 ran about 18,000 images/s with one seed and 50,000 with five fused, so 160 epochs
of ResNet-32 did not fit in a lease. This probe measures the options, one epoch of random
images after a warm-up epoch on the same (compiled) network, and prints one JSON line each,
stopping at ``--seconds``. (The measurements committed in data/benchmarks were taken by the
first version of this script, which timed the warm-up apart: ``warmup_s``.)
Run on the GPU machine: python3 scripts/gpu_speed_probe.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bnlib.bench import bnlib_images_per_s, random_dataset  # noqa: E402
from bnlib.config import RunConfig  # noqa: E402
from bnlib.train import hardware, resolve_device  # noqa: E402

VARIANTS = [  # (network, mode, compile, precision, fused seeds): the eager baseline first
    ("resnet-14", "bn", "none", "fp32", 1), ("resnet-14", "bn", "reduce-overhead", "fp32", 1),
    ("resnet-14", "bn", "none", "bf16", 1), ("resnet-32", "bn", "none", "fp32", 1),
    ("resnet-32", "bn", "reduce-overhead", "fp32", 1), ("resnet-14", "bn", "reduce-overhead", "fp32", 5),
]


def measure(network: str, mode: str, compile: str, precision: str, replicates: int, images: int,
            device: str) -> dict:
    config = RunConfig.from_flat(model=network, trainable=mode, device=device, compile=compile, precision=precision)
    started = time.time()
    rate = bnlib_images_per_s(config, random_dataset(images), replicates, warmup=True)
    return {"model": network, "trainable": mode, "compile": compile, "precision": precision,
            "replicates": replicates, "images_per_s": round(rate, 1), "seconds_with_warmup": round(time.time() - started, 1),
            "hardware": hardware(resolve_device(device)), "torch": torch.__version__}


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
