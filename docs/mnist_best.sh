#!/usr/bin/env bash
# The mnist-best preset: its training run (850 epochs, about 2 hours on this project's 2-core
# CPU), then log p(x) by importance sampling (K = 5000) on the whole 10,000-image MNIST test
# set, and the learning curve (the variational bound, estimator B with L = 1, on 10,000 training
# and all 10,000 test images, against training seconds).
# Needs the data files (AEVB_DATA or --data-dir).    bash docs/mnist_best.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-runs/mnist-best}
aevb=.venv/bin/aevb
[ -e "$out/report.html" ] || $aevb train --preset mnist-best --eval-points 24 --out "$out" --quiet
[ -e "$out-test.json" ] || $aevb evaluate "$out" --importance-samples 5000 --json \
    --per-example "$out-test.npy" > "$out-test.json"
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
import numpy as np
out = Path(sys.argv[1])
rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
test = json.loads(Path(f"{out}-test.json").read_text())
print("| epoch | training seconds | train bound | test bound |")
print("|---:|---:|---:|---:|")
for r in rows[1:]:
    seconds = r["samples"] / r["samples_per_second"]
    print(f"| {r['epoch']:.1f} | {seconds:.0f} | {r['train_elbo']:.2f} | {r['test_elbo']:.2f} |")
last = rows[-1]
print(f"\ntraining: {last['samples']:,} samples in {last['samples'] / last['samples_per_second']:.0f} s"
      f" ({last['seconds']:.0f} s wall, evaluations included)")
per = np.load(f"{out}-test.npy")
print(f"test log p(x), K = 5000, {test['n']} images: {test['log_likelihood']:.2f} nats"
      f" (standard error over images {per.std(ddof=1) / len(per) ** 0.5:.2f}; bound"
      f" {test['elbo']:.2f}; {test['seconds']:.0f} s); active units {test['active_units']}")
PY
