#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test: pytest for bnlib, nbval over every chapter,
# a headless-Chromium check of a built chapter. Needs no data, no GPU and no network beyond
# the package registries: everything runs on small synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh  # also installs headless Chromium where it can (root, apt)
# The chapters run under nbval in the smoke profile: synthetic data, tiny networks, seconds.
export BNLIB_PROFILE=smoke
# On every core (pytest-xdist), one worker more than cores: many tests wait on the processes they
# start (kernels, Ray, a browser). tests/conftest.py gives a worker a whole file at a time (a
# notebook's cells share one kernel; the browser tests write in the clone), the Ray sweeps' tests
# one by one, and each worker one torch thread.
workers=${BNLIB_TEST_WORKERS:-$(( $(nproc) + 1 ))}
.venv/bin/python -m pytest -q -n "$workers" tests --nbval-lax chapters "$@"
