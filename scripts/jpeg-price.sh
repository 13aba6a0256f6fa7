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
CACHE="${BNLIB_CACHE:-$HOME/.cache/bnlib}/reencoded"
mkdir -p "$RUNS"
echo "--- jpeg price started $(date -u +%FT%T) at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'an unknown commit') ---" >> "$RUNS/sweep.log"
for quality in 50 25; do
    copy="$CACHE/$(basename "$DATA" .tar.gz)-q$quality.tar.gz"
    [ -f "$copy" ] || "$PYTHON" -m bnlib data reencode --quality "$quality" "$DATA" "$copy" >> "$RUNS/sweep.out" 2>&1
    "$PYTHON" -m bnlib sweep --models resnet-14 --trainable bn,all --seeds 1 --epochs 16 --data "$copy" \
        --runs-dir "$RUNS" --no-progress --log "$RUNS/sweep.log" >> "$RUNS/sweep.out" 2>&1
done
