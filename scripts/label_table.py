"""The test error of q(y|x) of labelled runs, as markdown rows with their mean and spread:
    python scripts/label_table.py NAME RUN_DIR...      (docs/ssl_table.sh, docs/m2_pixels.sh)"""
import json
import statistics
import sys
from pathlib import Path


def main(name, runs):
    errors = []
    for run in runs:
        last = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text()
                .splitlines()][-1]
        errors.append(100 * last["test_error"])
        print(f"| {name}, {Path(run).name} | {errors[-1]:.2f}% | {last['epoch']:.0f} epochs, "
              f"{last['seconds']:.0f} s |")
    spread = statistics.stdev(errors) if len(errors) > 1 else 0.0
    print(f"| {name}, mean (± sd) over {len(errors)} label draws | "
          f"**{statistics.mean(errors):.2f}%** (± {spread:.2f}) | |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
