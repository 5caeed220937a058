#!/usr/bin/env bash
# The peer for bench/ssvae.py: pyro-ppl 1.9.1 from PyPI (the version its ss-vae example asserts)
# in its own virtual environment, on the same CPU build of torch as aevb (pinned first, so pip
# does not pull a CUDA build).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv-pyro/bin/python ] || python3 -m venv .venv-pyro
.venv-pyro/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv-pyro/bin/python -m pip install --quiet --disable-pip-version-check "pyro-ppl==1.9.1"
