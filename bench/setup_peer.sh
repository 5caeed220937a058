#!/usr/bin/env bash
# The peer for bench/run.py: pythae 0.1.2 from PyPI in its own virtual environment, on the
# same CPU build of torch as aevb (pinned first, so pip does not pull a CUDA build).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv-pythae/bin/python ] || python3 -m venv .venv-pythae
.venv-pythae/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv-pythae/bin/python -m pip install --quiet --disable-pip-version-check "pythae==0.1.2"
