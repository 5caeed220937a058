#!/usr/bin/env bash
# Re-makes docs/reproduction.md's figures and numbers: Figures 2 to 5 of the paper at the
# default budget (1e6 training samples per configuration), then copies the PNGs and
# results.md into docs/reproduction/. Figure 3 runs in a second process beside the others,
# each on one thread: 55 minutes on the 2-core development machine. Interrupt it at any time
# and run it again: finished configurations are kept, interrupted ones resume.
# Needs the data files (AEVB_DATA or ~/.cache/aevb, see README "Datasets").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-runs/reproduction}
aevb=.venv/bin/aevb
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
$aevb reproduce fig3 --out "$out" --quiet &
fig3=$!
trap 'kill $fig3 2>/dev/null || true' EXIT  # a failure or Ctrl-C here stops both
for figure in fig4 fig5 fig2; do  # fig5 reuses fig4's and fig2's runs, fig2 fig4's
  $aevb reproduce "$figure" --out "$out" --quiet
done
wait $fig3
mkdir -p docs/reproduction
cp "$out"/fig*.png "$out/results.md" docs/reproduction/
