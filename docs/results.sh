#!/usr/bin/env bash
# Re-makes every number and picture in README.md "Results": three training runs, the K = 5000
# evaluation, and the PNGs copied to docs/img/. About 10 minutes on a 2-core CPU.
# Needs the data files (AEVB_DATA or --data-dir, see README "Datasets").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-runs/docs}
mkdir -p docs/img
aevb=.venv/bin/aevb
$aevb train --preset mnist-paper --dataset mnist --latent-dim 20 --samples 1e6 --out "$out/mnist-nz20" --quiet
$aevb evaluate "$out/mnist-nz20" --importance-samples 5000 --json | tee "$out/mnist-nz20-eval.json"
$aevb report "$out/mnist-nz20"
$aevb train --preset mnist-paper --dataset mnist --latent-dim 2 --samples 1e6 --out "$out/mnist-nz2" --quiet
$aevb train --preset frey-paper --latent-dim 2 --samples 1e6 --out "$out/frey-nz2" --quiet
$aevb plot "$out/mnist-nz20" "$out/mnist-nz2" --out docs/img/mnist-curves.png
cp "$out/mnist-nz2/manifold.png" docs/img/mnist-manifold-nz2.png
cp "$out/frey-nz2/manifold.png" docs/img/frey-manifold-nz2.png
cp "$out/mnist-nz20/samples.png" docs/img/mnist-samples-nz20.png
cp "$out/mnist-nz20/reconstructions.png" docs/img/mnist-reconstructions-nz20.png
cp "$out/mnist-nz20/latent.png" docs/img/mnist-latent-nz20.png
cp "$out/frey-nz2/curves.png" docs/img/frey-curves-nz2.png
cp "$out/frey-nz2/samples.png" docs/img/frey-samples-nz2.png
# The latent explorers linked from the README and the guide (written by aevb train).
mkdir -p docs/explorer
cp "$out/mnist-nz2/explorer.html" docs/explorer/mnist-nz2.html
cp "$out/frey-nz2/explorer.html" docs/explorer/frey-nz2.html
