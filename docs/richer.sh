#!/usr/bin/env bash
# The pictures of docs/guide.md section 8 ("Richer priors and posteriors"): two MNIST models
# with N_z = 2 trained alike (784-500-2 tanh, Bernoulli, Adam 0.001, estimator B, EPOCHS epochs,
# default 10), one with the paper's N(0, I) prior and one with a VampPrior of 100
# pseudo-inputs; then each run's aggregate-posterior picture and the pseudo-inputs, copied into
# docs/img, and both models' test log p(x) (K = 1000, the first 2000 test images).
# Two runs at a time, one thread each; about 4 minutes on a 2-core CPU at the default.
# Needs the data files (AEVB_DATA or --data-dir).    bash docs/richer.sh [OUT] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-runs/richer}
epochs=${2:-10}
aevb=.venv/bin/aevb
common=(--dataset mnist --latent-dim 2 --hidden 500 --optimizer adam --lr 0.001
        --weight-prior-std none --epochs "$epochs" --eval-points 6 --quiet)

train() {  # name, extra flags
    local dir="$out/$1"; shift
    [ -e "$dir/report.html" ] || OMP_NUM_THREADS=1 $aevb train "${common[@]}" "$@" --out "$dir"
    OMP_NUM_THREADS=1 $aevb evaluate "$dir" --importance-samples 1000 --limit 2000 \
        --json > "$dir-test.json"
}
mkdir -p "$out"
train normal & first=$!
train vamp --prior vamp --prior-components 100 & second=$!
wait $first
wait $second
cp "$out/normal/aggregate-posterior.png" docs/img/richer-aggregate-normal.png
cp "$out/vamp/aggregate-posterior.png" docs/img/richer-aggregate-vamp.png
cp "$out/vamp/pseudo-inputs.png" docs/img/richer-pseudo-inputs.png
for name in normal vamp; do
    .venv/bin/python -c "import json, sys; r = json.load(open(sys.argv[1]));
print(sys.argv[2], 'test log p(x) %.2f, bound %.2f nats' % (r['log_likelihood'], r['elbo']))" \
        "$out/$name-test.json" "$name"
done
