#!/usr/bin/env bash
# Open the book's notebooks (chapters/, book/) in JupyterLab, from .venv, with the kernel the
# chapters name (python3: this environment's ipykernel). It listens on the loopback address only
# and asks for the token it prints; on a GPU server, forward the port from your own machine
# (ssh -L 8888:127.0.0.1:8888 SERVER) and open the printed URL there. Chapters read the profile
# from BNLIB_PROFILE, as under papermill:  BNLIB_PROFILE=smoke bash scripts/lab.sh
#   PORT   the port (default 8888; JupyterLab takes the next free one if it is busy)
# Other arguments go to jupyter lab, e.g. chapters/07-clamping.ipynb to open that chapter.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/jupyter-lab ] || bash scripts/setup.sh
# this environment's kernels before any of the user's own (a python3 kernel of another Python),
# and its commands (python, papermill) in JupyterLab's terminals, as after `source .venv/bin/activate`
export JUPYTER_PREFER_ENV_PATH=1 VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
# JupyterLab refuses root unless told; containers and CI machines often run as root
root=()
[ "$(id -u)" = 0 ] && root=(--allow-root)
# Terminals run the user's shell, not as a login shell (Jupyter's choice when started without a
# tty, as on a server), which would reset PATH from /etc/profile and lose .venv/bin.
exec .venv/bin/jupyter-lab --ip=127.0.0.1 --port="${PORT:-8888}" --no-browser \
    --ServerApp.root_dir="$PWD" --ServerApp.terminado_settings="shell_command=${SHELL:-/bin/sh}" \
    "${root[@]}" "$@"
