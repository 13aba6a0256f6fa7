#!/usr/bin/env bash
# The price of the JPEG copy (chapter 9): re-encode the copy of CIFAR-10 at quality 50 and 25
# (into the data cache, never the repository), then train ResNet-14 in BN-only and All modes for
# 16 epochs on each, into data/runs/scale beside the epoch ladder. Resumable: run it again.
#   DATA, RUNS_DIR, PYTHON as for scripts/scale-ladder.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS_DIR:-$ROOT/data/runs/scale}"
DATA="${DATA:-$(cd "$ROOT/.." && pwd)/shared/data/cifar10-jpeg.tar.gz}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
mkdir -p "$RUNS"
echo "--- jpeg price started $(date -u +%FT%T) at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'an unknown commit') ---" >> "$RUNS/sweep.log"
# re-encodes the copies the data cache lacks, then trains (bnlib.experiments.jpeg_price)
"$PYTHON" -m bnlib sweep --experiment jpeg-price --data "$DATA" --runs-dir "$RUNS" --no-progress \
    --log "$RUNS/sweep.log" >> "$RUNS/sweep.out" 2>&1
