#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test: pytest for bnlib, nbval over every chapter,
# a headless-Chromium check of a built chapter. Needs no data, no GPU and no network beyond
# the package registries: everything runs on small synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh  # also installs headless Chromium where it can (root, apt)
# The chapters run under nbval in the smoke profile: synthetic data, tiny networks, seconds.
export BNLIB_PROFILE=smoke
# On every core (pytest-xdist), a file per worker at a time: a notebook's cells share one kernel
# (nbval), and the tests that write in the clone share tests/test_browser.py.
.venv/bin/python -m pytest -q -n "${BNLIB_TEST_WORKERS:-auto}" --dist loadfile tests --nbval-lax chapters "$@"
