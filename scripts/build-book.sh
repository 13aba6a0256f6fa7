#!/usr/bin/env bash
# Set up (scripts/setup.sh) and build the book into _build/html, executing every chapter.
# The chapters run in the profile named by $BNLIB_PROFILE (default: cpu), which loads the
# committed results and trains nothing; set BNLIB_PROFILE=smoke for a synthetic-data build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export BNLIB_PROFILE="${BNLIB_PROFILE:-cpu}"
.venv/bin/python -m bnlib pages --profile "$BNLIB_PROFILE" > /dev/null   # a page per network, by papermill
.venv/bin/jupyter-book build --all . "$@"
echo "book: $PWD/_build/html/index.html"
