#!/usr/bin/env bash
# Fashion-MNIST: the convolutional preset (conv-images) against the MLP preset (mnist-paper on
# fashion-mnist) at equal training time. Both train side by side, one thread each, for the
# number of samples that fills MINUTES of training at the speed each reached in a 60-second
# pilot; then log p(x) by importance sampling (K = 1000) on the first 2000 test images.
# Needs the data files (AEVB_DATA or --data-dir).    bash docs/fashion_conv.sh [OUT] [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-runs/fashion}
minutes=${2:-15}
aevb=.venv/bin/aevb
mkdir -p "$out"
speed() {  # run dir -> training samples per second
    .venv/bin/python -c "import json,sys; print(json.loads(open(sys.argv[1]+'/metrics.jsonl').read().splitlines()[-1])['samples_per_second'])" "$1"
}
declare -A flags=([conv]="--preset conv-images --engine compiled" [mlp]="--preset mnist-paper --dataset fashion-mnist")
for name in conv mlp; do  # pilots, side by side
    [ -e "$out/pilot-$name/report.html" ] || OMP_NUM_THREADS=1 $aevb train ${flags[$name]} \
        --samples 1e5 --eval-points 1 --eval-examples 100 --out "$out/pilot-$name" --quiet &
done
wait
pids=()
for name in conv mlp; do
    samples=$(.venv/bin/python -c "print(int(float('$(speed "$out/pilot-$name")') * 60 * $minutes // 100 * 100))")
    [ -e "$out/$name/report.html" ] || OMP_NUM_THREADS=1 $aevb train ${flags[$name]} \
        --samples "$samples" --eval-points 6 --out "$out/$name" --quiet & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for name in conv mlp; do
    $aevb evaluate "$out/$name" --importance-samples 1000 --limit 2000 --json > "$out/$name-test.json"
done
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| preset | engine | training samples | training seconds | test bound | test log p(x) (K = 1000, 2000 images) |")
print("|---|---|---:|---:|---:|---:|")
for name, preset in (("conv", "conv-images"), ("mlp", "mnist-paper")):
    run = out / name
    last = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()][-1]
    engine = json.loads((run / "config.json").read_text())["engine"]["name"]
    test = json.loads((out / f"{name}-test.json").read_text())
    print(f"| `{preset}` | {engine} | {last['samples']:,} | {last['samples'] / last['samples_per_second']:.0f} | "
          f"{test['elbo']:.2f} | {test['log_likelihood']:.2f} |")
PY
