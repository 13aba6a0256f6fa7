#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test. Needs no data, no GPU and no network
# beyond the package registry: tests use small synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
