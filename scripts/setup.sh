#!/usr/bin/env bash
# Create .venv (if missing) and install bnlib with everything its tests need.
# Idempotent: a second call only checks that the packages are there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# torch 2.14.1 / torchvision 0.29.1: the releases this project is tested with (on these machines
# pip takes them from local disk). On a GPU server with its own CUDA build, set BNLIB_KEEP_TORCH=1.
if [ -z "${BNLIB_KEEP_TORCH:-}" ]; then
    .venv/bin/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,book,sweep]'
