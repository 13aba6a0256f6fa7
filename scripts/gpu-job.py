#!/usr/bin/env python3
"""A prepared GPU job for a Slurm allocation, a preemptible instance or a shared slot: check and
measure the GPU path, estimate the paper profile, train what answers most claims in the time
left, and pack what changed into one archive (the steps: bnlib/job.py).

usage: python scripts/gpu-job.py --budget 9m --data ../shared/data/cifar10-jpeg.tar.gz \\
           [--device cuda] [--archive out/gpu-job.tar.gz] [--steps abcdef]
Exit status: 0 done, 1 a step failed (the report names it), 3 runs left for the next job.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, installed or not

from bnlib.job import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
