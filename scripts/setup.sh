#!/usr/bin/env bash
# Create .venv (if missing) and install bnlib with everything its tests need.
# Idempotent: a second call only checks that the packages are there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# requirements.txt pins the versions the book is built and tested with. On a GPU server with its
# own CUDA build of torch, BNLIB_KEEP_TORCH=1 keeps that torch (and its torchvision).
requirements=requirements.txt
if [ -n "${BNLIB_KEEP_TORCH:-}" ]; then
    requirements=$(mktemp)
    grep -v -E '^(torch|torchvision)==' requirements.txt > "$requirements"
fi
.venv/bin/pip install -q --disable-pip-version-check -r "$requirements"
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
# Headless Chromium and its WebDriver, for the tests that open a built chapter and drive
# JupyterLab (Debian's packages; CI runs as root). Installed here, once, so that the test
# command only runs tests; without root they are skipped and so are those tests.
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
        || echo "chromium not installed" >&2
fi
