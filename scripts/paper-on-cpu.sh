#!/usr/bin/env bash
# Appendix B's runs (160 epochs) that a 2-core CPU trains in days, into the paper store beside
# the GPU runs (bnlib.experiments.paper_on_cpu): ResNet-14's Figures 1 and 2, the ResNet-110
# case study, Appendices D, E and C at ResNet-14, then ResNet-110 None and All and more seeds.
# One run at a time with every core, the fastest layout measured (README). Resumable: run it
# again and it skips finished runs and resumes the others from their last epoch.
#   DATA      data source (default ../shared/data/cifar10-jpeg.tar.gz)
#   RUNS_DIR  results store (default data/runs/paper, where the book looks)
#   PYTHON    interpreter with bnlib installed (default .venv/bin/python)
#   SNAPSHOT  a folder: train from a copy of the committed bnlib there, so that editing the
#             working tree during the days a run takes does not change the run
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS_DIR:-$ROOT/data/runs/paper}"
DATA="${DATA:-$(cd "$ROOT/.." && pwd)/shared/data/cifar10-jpeg.tar.gz}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'an unknown commit')"
mkdir -p "$RUNS"
RUNS="$(cd "$RUNS" && pwd)"
if [ -n "${SNAPSHOT:-}" ]; then
    rm -rf "$SNAPSHOT" && mkdir -p "$SNAPSHOT"
    git -C "$ROOT" archive HEAD bnlib | tar -x -C "$SNAPSHOT"
    export PYTHONPATH="$SNAPSHOT${PYTHONPATH:+:$PYTHONPATH}"
    cd "$SNAPSHOT"
fi
echo "--- paper on cpu started $(date -u +%FT%T) at $COMMIT ---" >> "$RUNS/sweep.log"
"$PYTHON" -m bnlib sweep --experiment paper-on-cpu --data "$DATA" --runs-dir "$RUNS" --no-progress \
    --log "$RUNS/sweep.log" >> "$RUNS/sweep.out" 2>&1
echo "--- paper on cpu finished $(date -u +%FT%T) ---" >> "$RUNS/sweep.log"
