#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then train a VAE on the bundled 8x8 digits
# (no network, no data files needed). Extra arguments go to `aevb train`.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/aevb train --dataset digits --latent-dim 2 "$@"
