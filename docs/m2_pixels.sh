#!/usr/bin/env bash
# Kingma, Rezende, Mohamed & Welling (2014), Table 1's M2 row with 100 labels on MNIST pixels
# (docs/reproduction.md, "Labels"): the m2-paper preset for EPOCHS epochs (default 75) with the
# labels drawn by each seed of SEEDS (default "0 1 2"), all at once with one thread each; the
# table gives each run's test error of q(y|x) on the 10,000 test images, their mean and spread.
# Needs the data files (AEVB_DATA or --data-dir).
#     bash docs/m2_pixels.sh [OUT] [EPOCHS] [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-runs/m2-pixels}
epochs=${2:-75}
seeds=${3:-"0 1 2"}
mkdir -p "$out"
runs=()
for seed in $seeds; do
    runs+=("$out/seed$seed")
    [ -e "$out/seed$seed/report.html" ] || OMP_NUM_THREADS=1 .venv/bin/aevb train \
        --preset m2-paper --seed "$seed" --epochs "$epochs" --eval-points 10 \
        --out "$out/seed$seed" --quiet &
done
wait
.venv/bin/python scripts/label_table.py M2 "${runs[@]}"
