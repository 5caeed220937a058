#!/usr/bin/env bash
# What Kingma et al.'s two feature settings change in M1 + M2 (docs/reproduction.md, "Labels"):
# the m1m2-paper preset with --feature-draws and --active-features each on or off, and the
# m2-paper preset (layers of 500, M1's means), EPOCHS epochs each (default 10), seed 0, one
# run at a time, on the M1 run directory M1 (an m1-paper run). Prints each run's test error.
# Needs the data files (AEVB_DATA or --data-dir).
#     bash docs/ssl_ablation.sh M1 [OUT] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
m1=$1
out=${2:-runs/ssl-ablation}
epochs=${3:-10}
aevb=.venv/bin/aevb
mkdir -p "$out"
run() {  # NAME PRESET DRAWS ACTIVE
    [ -e "$out/$1/report.html" ] || $aevb train --preset "$2" --features "$m1" --seed 0 \
        --feature-draws "$3" --active-features "$4" --epochs "$epochs" --eval-points 3 \
        --out "$out/$1" --quiet
    .venv/bin/python -c "import json, sys; r = [json.loads(l) for l in open(sys.argv[1])][-1]; \
print(f'| $2 | $3 | $4 | {100 * r[\"test_error\"]:.2f}% | {r[\"seconds\"]:.0f} s |')" \
        "$out/$1/metrics.jsonl"
}
echo "| preset | feature-draws | active-features | test error | seconds |"
echo "|---|---|---|---:|---:|"
run m2-means m2-paper false false
run means m1m2-paper false false
run active m1m2-paper false true
run draws m1m2-paper true false
run both m1m2-paper true true
