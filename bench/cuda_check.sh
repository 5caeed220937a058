#!/usr/bin/env bash
# The CUDA path, end to end, on a machine with an NVIDIA GPU and PyTorch (no install, no
# network): each engine and model trains on the GPU, `aevb evaluate` agrees between GPU and
# CPU on the same run, a full-vb run and the explorer work from a GPU-trained run.
#     AEVB_DATA=/path/to/data bash bench/cuda_check.sh [OUT]      (about 4 minutes on an H100)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/cuda-check}
py=${PYTHON:-python3}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
aevb() { $py -m aevb "$@"; }
mkdir -p "$out"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
common=(--dataset mnist --device cuda --eval-points 2 --quiet)
run() {  # name, flags...
    local name=$1; shift
    local start=$(date +%s.%N)
    if aevb train "${common[@]}" "$@" --out "$out/$name" 2>"$out/$name.err"; then
        $py - "$out/$name" "$start" <<'PY'
import json, sys, time
from pathlib import Path
run = Path(sys.argv[1])
m = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()][-1]
engine = json.loads((run / "config.json").read_text())["engine"]["name"]
print(f"{run.name}: engine {engine}, {m['samples']} samples, test bound {m['test_elbo']:.2f}, "
      f"{m['samples_per_second']:,.0f} samples/s in training, {time.time() - float(sys.argv[2]):.0f} s in all")
PY
    else
        echo "$name: FAILED"; tail -5 "$out/$name.err"
    fi
}
run paper-eager --preset mnist-paper --samples 300000 --engine eager
run paper-compiled --preset mnist-paper --samples 300000 --engine compiled
run iwae5-compiled --preset mnist-paper --hidden 200,200 --latent-dim 50 --estimator iwae \
    --mc-samples 5 --optimizer adam --lr 1e-3 --samples 300000 --engine compiled
run conv-compiled --preset mnist-paper --network conv --activation relu --hidden 256 \
    --optimizer adam --lr 1e-3 --samples 300000 --engine compiled
run full-vb --dataset mnist --latent-dim 3 --hidden 100 --algorithm full-vb --samples 300000 \
    --train-examples 1000 --engine compiled
for device in cuda cpu; do
    echo "evaluate paper-compiled on $device:"
    aevb evaluate "$out/paper-compiled" --device $device --importance-samples 5000 --limit 1000 --json
done
echo "evaluate full-vb on cuda:"
aevb evaluate "$out/full-vb" --device cuda --importance-samples 1000 --limit 1000 | head -1
aevb explore "$out/paper-compiled" --out "$out/explorer.html"
