#!/usr/bin/env bash
# The IWAE paper's MNIST rows (Burda et al. 2015, Table 1: VAE k = 1, IWAE k = 5 and k = 50,
# 784-200-200-50 networks) re-made with the iwae-paper preset for EPOCHS epochs each (the
# paper: 3,280), then log p(x) by importance sampling (K = 5000) on the first LIMIT test images.
# Needs the data files (AEVB_DATA or --data-dir).
#     bash docs/iwae_table.sh [OUT] [EPOCHS] [LIMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-runs/iwae}
epochs=${2:-3}
limit=${3:-1000}
aevb=.venv/bin/aevb
mkdir -p "$out"
train() {  # k, threads
    [ -e "$out/k$1/report.html" ] || OMP_NUM_THREADS=$2 $aevb train --preset iwae-paper \
        --mc-samples "$1" --epochs "$epochs" --eval-points 4 --eval-examples 2000 --out "$out/k$1" --quiet
}
(train 1 1) & first=$!
(train 5 1) & second=$!
wait $first; wait $second
train 50 2
for k in 1 5 50; do
    $aevb evaluate "$out/k$k" --importance-samples 5000 --limit "$limit" --json > "$out/k$k-test.json"
done
.venv/bin/python - "$out" "$epochs" <<'PY'
import json, sys
from pathlib import Path
out, epochs = Path(sys.argv[1]), sys.argv[2]
paper = {1: ("VAE", -86.76), 5: ("IWAE", -85.54), 50: ("IWAE", -84.78)}
print("| row | k | epochs | aevb test log p(x) | active units | training seconds | paper (3,280 epochs) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for k, (name, published) in paper.items():
    test = json.loads((out / f"k{k}-test.json").read_text())
    last = [json.loads(l) for l in (out / f"k{k}" / "metrics.jsonl").read_text().splitlines()][-1]
    print(f"| {name} | {k} | {epochs} | {test['log_likelihood']:.2f} | {test['active_units']} | "
          f"{last['samples'] / last['samples_per_second']:.0f} | {published} |")
PY
