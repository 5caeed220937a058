#!/usr/bin/env bash
# Re-makes docs/reproduction.md's figures and numbers: Figures 2 to 5 of the paper at the
# default budget (1e6 training samples per configuration), about 75 minutes on a 2-core CPU,
# then copies the PNGs and results.md into docs/reproduction/. Interrupt it at any time and
# run it again: finished configurations are kept, an interrupted one resumes.
# Needs the data files (AEVB_DATA or ~/.cache/aevb, see README "Datasets").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-runs/reproduction}
aevb=.venv/bin/aevb
for figure in fig4 fig5 fig2 fig3; do  # fig4 and fig5 reuse each other's and fig2's runs
  /usr/bin/time -f "$figure: %e s wall" $aevb reproduce "$figure" --out "$out" --quiet
done
mkdir -p docs/reproduction
cp "$out"/fig*.png "$out/results.md" docs/reproduction/
