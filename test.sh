#!/usr/bin/env bash
# The whole test suite. Real-data tests read $AEVB_DATA (default: ../shared/data if present).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [ -z "${AEVB_DATA:-}" ] && [ -d ../shared/data ]; then export AEVB_DATA=../shared/data; fi
exec .venv/bin/python -m pytest -q "$@"
