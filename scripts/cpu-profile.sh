#!/usr/bin/env bash
# Run, or resume, the book's `cpu` profile in the background (about 10 hours on a 2-core CPU).
# Finished runs are skipped and interrupted ones resume from their last epoch, so run this
# again after a reboot or a closed session. Lines per finished run go to $RUNS/sweep.log.
#   RUNS_DIR  results store (default data/runs/cpu, where the book looks)
#   PYTHON    interpreter with bnlib installed (default .venv/bin/python; scripts/setup.sh makes it)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS_DIR:-$ROOT/data/runs/cpu}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
mkdir -p "$RUNS"
cd "$ROOT"
nohup "$PYTHON" -m bnlib sweep --profile cpu --runs-dir "$RUNS" --no-progress >> "$RUNS/sweep.log" 2>&1 &
echo "cpu profile sweep started (pid $!); follow it with: tail -f $RUNS/sweep.log"
