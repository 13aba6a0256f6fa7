#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test: pytest for bnlib, nbval over every chapter,
# a headless-Chromium check of a built chapter. Needs no data, no GPU and no network beyond
# the package registries: everything runs on small synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Headless Chromium for the test that opens a built chapter (Debian's package; CI runs as root).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed" >&2
fi
# The chapters run under nbval in the smoke profile: synthetic data, tiny networks, seconds.
export BNLIB_PROFILE=smoke
.venv/bin/python -m pytest -q tests --nbval-lax chapters "$@"
