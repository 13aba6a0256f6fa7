#!/usr/bin/env bash
# The epoch ladder (chapter 9, "From two epochs to 160"): ResNet-14 in BN-only and All modes at
# 4, 8, 16 and 32 epochs (Appendix B's schedule scaled: lr drops at 50% and 75%), two seeds up to
# 16 epochs, and ResNet-32 BN-only at 16 epochs, on the JPEG copy of CIFAR-10. One seed of every
# rung first (cheapest first), the second seeds last, so that a ladder cut short still spans all
# training lengths (bnlib.experiments.scale_ladder); run it again to resume (finished runs are
# skipped, interrupted ones resume from their last epoch). About 3 hours on a quiet 2-core CPU,
# 6 or more on a busy one.
#   RUNS_DIR  results store (default data/runs/scale, where the book looks)
#   DATA      data source (default ../shared/data/cifar10-jpeg.tar.gz)
#   PYTHON    interpreter with bnlib installed (default .venv/bin/python)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS_DIR:-$ROOT/data/runs/scale}"
DATA="${DATA:-$(cd "$ROOT/.." && pwd)/shared/data/cifar10-jpeg.tar.gz}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
mkdir -p "$RUNS"
echo "--- started $(date -u +%FT%T) at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'an unknown commit') ---" >> "$RUNS/sweep.log"
"$PYTHON" -m bnlib sweep --experiment scale-ladder --data "$DATA" --runs-dir "$RUNS" --no-progress \
    --log "$RUNS/sweep.log" >> "$RUNS/sweep.out" 2>&1
echo "--- ladder finished $(date -u +%FT%T) ---" >> "$RUNS/sweep.log"
