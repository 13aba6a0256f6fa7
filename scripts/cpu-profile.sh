#!/usr/bin/env bash
# Run, or resume, the book's `cpu` profile in the background (about 12 hours on a 2-core CPU).
# Finished runs are skipped and interrupted ones resume from their last epoch, so run this
# again after a reboot or a stopped machine. A line per finished run (and one per start) goes to
# $RUNS/sweep.log, which is committed with the runs; Ray's own messages go to $RUNS/sweep.out.
#   RUNS_DIR  results store (default data/runs/cpu, where the book looks)
#   PYTHON    interpreter with bnlib installed (default .venv/bin/python; scripts/setup.sh makes it)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS_DIR:-$ROOT/data/runs/cpu}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
mkdir -p "$RUNS"
cd "$ROOT"
echo "--- started $(date -u +%FT%T) at $(git rev-parse --short HEAD 2>/dev/null || echo 'an unknown commit') ---" >> "$RUNS/sweep.log"
nohup "$PYTHON" -m bnlib sweep --profile cpu --runs-dir "$RUNS" --no-progress --log "$RUNS/sweep.log" \
    >> "$RUNS/sweep.out" 2>&1 &
echo "cpu profile sweep started (pid $!); follow it with: tail -f $RUNS/sweep.log"
