"""aevb.train() from Python against the `aevb train` command: training samples per second of
the mnist-paper model, alternating fresh processes (each measures its steps only, the
metrics' samples_per_second). The goal: Python at >= 0.95x the command.

    AEVB_DATA=../shared/data .venv/bin/python bench/api_speed.py [ROUNDS]

Prints one JSON object and writes it to bench/api_speed.json.
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = os.environ.get("AEVB_DATA", str(HERE.parent.parent / "shared" / "data"))
SAMPLES = 300_000
SETTINGS = dict(samples=SAMPLES, eval_points=1, eval_examples=1000, data_dir=DATA,
                download=False)


def _speed(out: Path) -> float:
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    return last["samples_per_second"]


def command(out: Path) -> float:
    args = [sys.executable, "-m", "aevb", "train", "--preset", "mnist-paper", "--quiet",
            "--out", str(out), *[f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]]
    subprocess.run(args, check=True, capture_output=True)
    return _speed(out)


def python_api(out: Path) -> float:
    code = ("import aevb\naevb.train(aevb.resolve('mnist-paper', out=%r, **%r), progress=False)"
            % (str(out), SETTINGS))
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return _speed(out)


def main(rounds: int = 3) -> dict:
    speeds = {"command": [], "python": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for name, run in (("command", command), ("python", python_api)):
                speeds[name].append(run(Path(tmp) / f"{name}-{i}"))
    ratios = sorted(p / c for p, c in zip(speeds["python"], speeds["command"]))
    result = {"samples_per_second": speeds, "ratio_per_round": ratios,
              # the median of the rounds' ratios: each pair ran back to back
              "ratio_python_to_command": ratios[len(ratios) // 2],
              "samples": SAMPLES, "machine": f"{os.cpu_count()} cores, {platform.platform()}"}
    (HERE / "api_speed.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)))
