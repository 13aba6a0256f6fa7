#!/usr/bin/env bash
# One short GPU lease: train as much of the `paper` profile as fits in $BUDGET seconds
# (scripts/paper_on_gpu.py) and pack the run folders, without weights, into $OUT/runs.tgz,
# every 20 s and at the end, so that a lease cut short still returns what had finished.
# The JPEG copy of CIFAR-10 travels in .device/ (git-ignored): cp ../shared/data/*.tar.gz .device/
# Unpack the results here with: tar xzf runs.tgz -C data/runs. Arguments go to paper_on_gpu.py.
# The checkpoints of runs stopped at the deadline come back as checkpoints.tgz.NN (parts of at
# most 15 MB, the most a returned file may hold): cat checkpoints.tgz.* | tar xz -C data/runs
# puts them where a later lease resumes them (carry each data/runs/paper/*/checkpoint.pt).
set -uo pipefail
OUT="${OUT:?set OUT to the folder that comes back}"
BUDGET="${BUDGET:-520}"
DATA="${LEASE_DATA:-/work/shared/data/cifar10-jpeg.tar.gz}"  # the path the cpu profile's runs record, where possible
# Never over an existing copy: run by mistake on a machine with ../shared, it would replace it.
[ -s "$DATA" ] || { mkdir -p "$(dirname "$DATA")" && cp -n .device/cifar10-jpeg.tar.gz "$DATA"; } 2>/dev/null \
  || DATA="$PWD/.device/cifar10-jpeg.tar.gz"
export PYTHONUNBUFFERED=1 BNLIB_CACHE="${BNLIB_CACHE:-/tmp/bnlib}"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__)" \
  | tee "$OUT/versions.txt"
# A second call on the same warm machine gets a fresh copy of the working tree, in which the run
# folders of the first call (not committed yet) are missing: it would retrain finished runs.
# So each call leaves everything it trained, weights included, outside the tree, and the next
# call on that machine puts back what the tree lacks.
KEEP="${LEASE_KEEP:-/tmp/lease-runs.tgz}"
SCRATCH=$(mktemp -d)  # this call's own: checkpoint parts being cut, the stop signal
[ -f "$KEEP" ] && tar xzf "$KEEP" -C data/runs --skip-old-files
pack() {
  tar czf "$OUT/runs.tgz.part" --exclude='*.pt' --exclude='.lock' -C data/runs paper 2>/dev/null \
    && mv "$OUT/runs.tgz.part" "$OUT/runs.tgz"
  local stopped
  stopped=$(cd data/runs && find paper -name checkpoint.pt)
  [ -n "$stopped" ] || { rm -f "$OUT"/checkpoints.tgz.*; return; }
  rm -f "$SCRATCH"/checkpoints.tgz.* \
    && tar czf - -C data/runs $stopped | split -b 15M -d -a 2 - "$SCRATCH"/checkpoints.tgz. \
    && rm -f "$OUT"/checkpoints.tgz.* && cp "$SCRATCH"/checkpoints.tgz.* "$OUT"/
}
done="$SCRATCH/done"
(while :; do for _ in 1 2 3 4; do sleep 5; [ -e "$done" ] && exit; done; pack; done) &
packer=$!
python3 scripts/paper_on_gpu.py --data "$DATA" --budget "$BUDGET" --report "$OUT/lease.json" "$@" 2>&1 \
  | tee "$OUT/lease.log"
touch "$done" && wait "$packer"  # the periodic packing ends before the last one starts
pack
tar czf "$KEEP" --exclude='.lock' -C data/runs paper
