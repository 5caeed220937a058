#!/usr/bin/env bash
# Kingma, Rezende, Mohamed & Welling (2014), Table 1's 100-label column on MNIST
# (docs/reproduction.md, "Labels"): M1 (the m1-paper preset, no labels) for M1_EPOCHS epochs,
# then M1 + M2 (the m2-paper preset on M1's means, --features) for M2_EPOCHS epochs with the
# labels drawn by each seed of SEEDS (the seed also starts the weights), AT_ONCE at a time
# (default 2) with one thread each; the table gives each run's test error of q(y|x) on the 10,000
# test images and their mean and spread. PRESET (default m1m2-paper: Kingma et al.'s code, with
# draws of M1's active units) names M2's settings; m2-paper trains on all of M1's means.
# Needs the data files (AEVB_DATA or --data-dir).
#     bash docs/ssl_table.sh [OUT] [M1_EPOCHS] [M2_EPOCHS] [SEEDS] [PRESET]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-runs/ssl-table}
m1_epochs=${2:-100}
m2_epochs=${3:-100}
seeds=${4:-"0 1 2"}
preset=${5:-m1m2-paper}
aevb=.venv/bin/aevb
mkdir -p "$out"
[ -e "$out/m1/report.html" ] || $aevb train --preset m1-paper --epochs "$m1_epochs" \
    --eval-points 4 --eval-examples 2000 --out "$out/m1" --quiet
m1m2() {
    [ -e "$out/m1m2-seed$1/report.html" ] || OMP_NUM_THREADS=1 $aevb train --preset "$preset" \
        --features "$out/m1" --seed "$1" --epochs "$m2_epochs" --eval-points 10 \
        --out "$out/m1m2-seed$1" --quiet
}
running=0
for seed in $seeds; do
    m1m2 "$seed" & running=$((running + 1))
    if [ "$running" -ge "${AT_ONCE:-2}" ]; then wait -n; running=$((running - 1)); fi
done
wait
runs=()
for seed in $seeds; do runs+=("$out/m1m2-seed$seed"); done
.venv/bin/python scripts/label_table.py "M1 + M2" "${runs[@]}"
