#!/usr/bin/env bash
# Appendix F: MAP (the paper's weight decay, --algorithm aevb) against full variational Bayes
# over theta (--algorithm full-vb) at Figure 3's settings: N_z = 3, 100 hidden units, the first
# 1000 and the first 50,000 MNIST training points, prior N(0, I) on theta for both, SAMPLES
# training samples each (default 10^7). Two runs at a time, one thread each; then log p(x) of
# the first 1000 training points and of the whole test set by importance sampling (K = 1000;
# for full-vb the predictive log E_q(theta)[p(x|theta)] over (theta, z) pairs), the bound and
# the posterior widths, and the table of docs/reproduction.md "Appendix F".
# About 35 minutes on a 2-core CPU. Needs the data files (AEVB_DATA or --data-dir).
#     bash docs/full_vb.sh [OUT] [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-runs/full-vb}
samples=${2:-10000000}
aevb=.venv/bin/aevb
common=(--dataset mnist --latent-dim 3 --hidden 100 --samples "$samples" --eval-points 8 --quiet)

train() {  # algorithm, training points
    local dir="$out/$1-$2"
    if [ ! -e "$dir/report.html" ]; then
        OMP_NUM_THREADS=1 $aevb train "${common[@]}" --algorithm "$1" --train-examples "$2" \
            --out "$dir"
    fi
}
mkdir -p "$out"
(train full-vb 1000 && train aevb 1000) & first=$!
(train full-vb 50000 && train aevb 50000) & second=$!
wait $first
wait $second
for run in full-vb-1000 aevb-1000 full-vb-50000 aevb-50000; do
    $aevb evaluate "$out/$run" --split train --limit 1000 --importance-samples 1000 --json \
        > "$out/$run-train.json"
    $aevb evaluate "$out/$run" --split test --importance-samples 1000 --json \
        > "$out/$run-test.json"
    $aevb report "$out/$run" > /dev/null
done
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
print("| training points | theta | train log p(x) | test log p(x) | gap | test bound |")
print("|---:|---|---:|---:|---:|---:|")
for n in (1000, 50000):
    for alg, name in (("aevb", "MAP (weight decay)"), ("full-vb", "full VB, q(theta)")):
        train, test = (json.loads((out / f"{alg}-{n}-{s}.json").read_text())
                       for s in ("train", "test"))
        print(f"| {n:,} | {name} | {train['log_likelihood']:.2f} | "
              f"{test['log_likelihood']:.2f} | "
              f"{train['log_likelihood'] - test['log_likelihood']:.2f} | "
              f"{test['elbo']:.2f} |")
for n in (1000, 50000):
    test = json.loads((out / f"full-vb-{n}-test.json").read_text())
    widths = ", ".join(f"{s['name']} {s['median']:.3g}" for s in test["posterior_std"])
    print(f"\nfull VB, {n:,} points: median posterior sigma per decoder tensor: {widths}")
PY
