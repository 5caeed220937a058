"""How much flushing subnormal floats to zero saves in aevb's training step.

    AEVB_DATA=../shared/data .venv/bin/python bench/subnormals.py

Trains the mnist-paper model for 300 steps in two fresh processes, one with FTZ/DAZ set
before torch starts its threads (as the `aevb` command does) and one without, and prints the
mean time of the last 200 Adagrad steps, of the whole step, and how many weights are
subnormal by then. Alternates the two three times; compare within one run only.
"""
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time, torch
if sys.argv[1] == "on":
    torch.set_flush_denormal(True)
sys.path.insert(0, sys.argv[3])
from run import training_step
from aevb.data import load_dataset

data = load_dataset("mnist", data_dir=sys.argv[2], download=False)
model, optimizer, gradients = training_step(data)
step_s = opt_s = 0.0
for i in range(300):
    t0 = time.perf_counter()
    gradients(i)
    t1 = time.perf_counter()
    optimizer.step()
    t2 = time.perf_counter()
    if i >= 100:
        step_s, opt_s = step_s + t2 - t0, opt_s + t2 - t1
tiny = torch.finfo(torch.float32).tiny
subnormal = sum(int(((p != 0) & (p.abs() < tiny)).sum()) for p in model.parameters())
print(json.dumps({"step_ms": step_s / 200 * 1e3, "adagrad_ms": opt_s / 200 * 1e3,
                  "subnormal_weights": subnormal}))
"""


def main():
    data = os.environ.get("AEVB_DATA", "../shared/data")
    runs = {"on": [], "off": []}
    for _ in range(3):
        for mode in runs:
            out = subprocess.run([sys.executable, "-c", CHILD, mode, data,
                                  os.path.dirname(os.path.abspath(__file__))],
                                 capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for mode, rs in runs.items():
        print(f"FTZ {mode:3}: each run (step ms, Adagrad ms):",
              ", ".join(f"({r['step_ms']:.2f}, {r['adagrad_ms']:.2f})" for r in rs))
    for mode, rs in runs.items():
        best = min(rs, key=lambda r: r["step_ms"])
        adagrad = min(r["adagrad_ms"] for r in rs)
        print(f"FTZ {mode:3}: step {best['step_ms']:.2f} ms, Adagrad {adagrad:.2f} ms, "
              f"{best['subnormal_weights']:,} subnormal weights (best of {len(rs)})")


if __name__ == "__main__":
    sys.exit(main())
