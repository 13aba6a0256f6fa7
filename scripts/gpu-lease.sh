#!/usr/bin/env bash
# One short GPU lease: train as much of the `paper` profile as fits in $BUDGET seconds
# (scripts/paper_on_gpu.py) and pack the run folders, without weights, into $OUT/runs.tgz,
# every 20 s and at the end, so that a lease cut short still returns what had finished.
# The JPEG copy of CIFAR-10 travels in .device/ (git-ignored): cp ../shared/data/*.tar.gz .device/
# Unpack the results here with: tar xzf runs.tgz -C data/runs. Arguments go to paper_on_gpu.py.
set -uo pipefail
OUT="${OUT:?set OUT to the folder that comes back}"
BUDGET="${BUDGET:-520}"
DATA=/work/shared/data/cifar10-jpeg.tar.gz  # the path the cpu profile's runs record, where possible
{ mkdir -p "$(dirname "$DATA")" && cp .device/cifar10-jpeg.tar.gz "$DATA"; } 2>/dev/null \
  || DATA="$PWD/.device/cifar10-jpeg.tar.gz"
export PYTHONUNBUFFERED=1 BNLIB_CACHE="${BNLIB_CACHE:-/tmp/bnlib}"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__)" \
  | tee "$OUT/versions.txt"
pack() {
  tar czf "$OUT/runs.tgz.part" --exclude='*.pt' --exclude='.lock' -C data/runs paper 2>/dev/null \
    && mv "$OUT/runs.tgz.part" "$OUT/runs.tgz"
}
(while sleep 20; do pack; done) &
packer=$!
python3 scripts/paper_on_gpu.py --data "$DATA" --budget "$BUDGET" --report "$OUT/lease.json" "$@" 2>&1 \
  | tee "$OUT/lease.log"
kill "$packer" 2>/dev/null
pack
