"""Processes sharing the cores: one, two and four trainings (or a training beside an
evaluation) at once, for each engine, with aevb's choice of threads and without it, measured
in one run.

    AEVB_DATA=../shared/data .venv/bin/python bench/contention.py      # ~30 min on 2 cores

Each measurement starts P child processes (this script with --child), which build the
mnist-paper model's training step (bench/engines.py's `our_step`, the step `aevb.train` runs)
or an importance-sampling evaluation, warm up, wait for a common start time, and count the
samples they get through in the same WINDOW seconds of wall time. The total over the P
processes, each over the rate of one such process alone, is the figure of merit: 1.0x means
that the cores are shared without loss. The settings (SETTINGS) are environment variables
given to the children: "aevb" gives none, so the child's threads follow the machine's load
as in `aevb.train` (`aevb.compute.threads.Sharing`, ticked after every step), "fixed" keeps
the count torch starts with (the behaviour before aevb chose). The alone figures alternate
between the settings within each round. Then the real command: `aevb train --preset
mnist-paper` one alone and two at once, its samples per second read from metrics.jsonl.
Writes bench/contention.json; docs/performance.md's "Sharing the cores" gives its figures.
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WINDOW, WARM, ROUNDS, ALONE_ROUNDS, COMMAND_SAMPLES = 15.0, 4.0, 2, 4, 300_000
if os.environ.get("AEVB_BENCH_QUICK"):  # a smoke run of the script itself (numbers useless)
    WINDOW, WARM, ROUNDS, ALONE_ROUNDS, COMMAND_SAMPLES = 2.0, 0.5, 1, 1, 2000
SETTINGS = {"aevb": {}, "fixed": {"AEVB_THREADS": "fixed"}}
ENGINES = ("native", "compiled", "eager")
COUNTS = (1, 2, 4)


def child(kind, engine_name, window):
    """One process: warm up, say "ready", read the common start time (time.time()) from
    stdin, keep stepping until then, then count samples for `window` seconds. Prints one
    JSON line."""
    from aevb.compute import numerics, threads

    numerics.set_up()  # as the `aevb` command does, before torch loads
    import torch

    sys.path.insert(0, str(HERE))
    import engines

    x, shape = engines.training_data("mnist")
    if kind == "train":
        run = engines.our_step("mnist-paper", x, shape, engine_name)
        per_call = 100
    else:
        run, per_call = evaluation(engines, x, shape), 100
    with threads.Sharing() as sharing:  # as aevb's training loop uses it, tick after each step
        i, warm_until = 0, time.perf_counter() + WARM
        while time.perf_counter() < warm_until or i < 3:
            run(i)
            sharing.tick()
            i += 1
        warm_threads = torch.get_num_threads()
        print("ready", flush=True)
        start_at = float(sys.stdin.readline())
        while time.time() < start_at:
            run(i)
            sharing.tick()
            i += 1
        done, end, counts = 0, start_at + window, set()
        while time.time() < end:
            run(i)
            sharing.tick()
            counts.add(torch.get_num_threads())
            i += 1
            done += per_call
        final_threads = torch.get_num_threads()
    print(json.dumps({"samples_per_second": done / window, "threads": final_threads,
                      "thread_counts_in_window": sorted(counts), "warm_threads": warm_threads,
                      "wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                      "spincount": os.environ.get("GOMP_SPINCOUNT")}))


def evaluation(engines, x, shape):
    """log p(x) by importance sampling (K = 100) of 100 test-sized batches, as `aevb evaluate`
    computes it, on the mnist-paper model."""
    from aevb.evaluation.importance import importance_log_likelihood

    _, model = engines.our_step("mnist-paper", x, shape, "eager", return_model=True)

    def run(i):
        importance_log_likelihood(model, x[i % 500 * 100:][:100], 100, seed=i)

    return run


def measure(jobs, setting):
    """Start one child per (kind, engine) in `jobs` under SETTINGS[setting]; their rates."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(SETTINGS[setting])
    procs = [subprocess.Popen([sys.executable, __file__, "--child", kind, e, str(WINDOW)],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for kind, e in jobs]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"a child failed before its window ({p.wait()})")
    start_at = time.time() + 1.0
    out = []
    for p in procs:
        p.stdin.write(f"{start_at}\n")
        p.stdin.flush()
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"a child failed ({p.returncode})")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    for c, (kind, e) in zip(out, jobs):
        c.update(kind=kind, engine=e)
    return out


def command_rates(n, setting):
    """`aevb train --preset mnist-paper` (3 x 10^5 samples), n at once: each one's samples
    per second of training, from its metrics.jsonl (the way the issue measured it)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(SETTINGS[setting])
    with tempfile.TemporaryDirectory() as tmp:
        procs = [subprocess.Popen([sys.executable, "-m", "aevb", "train", "--preset",
                                   "mnist-paper", "--samples", str(COMMAND_SAMPLES),
                                   "--out", f"{tmp}/{i}"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for i in range(n)]
        if any(p.wait() for p in procs):
            raise SystemExit("a training failed")
        return [json.loads(Path(f"{tmp}/{i}/metrics.jsonl").read_text().splitlines()[-1])
                ["samples_per_second"] for i in range(n)]


def main():
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "date": time.strftime("%Y-%m-%d")},
               "window_seconds": WINDOW, "rounds": ROUNDS, "alone_rounds": ALONE_ROUNDS, "runs": [], "commands": []}
    cases = ([(s, e, n, "train") for e in ENGINES for n in COUNTS for s in SETTINGS]
             + [(s, "eager", 1, "evaluate") for s in SETTINGS]
             + [(s, "native", 2, "train+evaluate") for s in SETTINGS])
    alone = [c for c in cases if c[2] == 1 and c[3] != "train+evaluate"]
    for r in range(ROUNDS + ALONE_ROUNDS):
        # the later rounds repeat the one-alone cases, where the two settings differ least;
        # odd rounds run "fixed" first, so that neither setting always runs first
        order = cases if r < ROUNDS else alone
        if r % 2:
            order = [c for pair in zip(order[1::2], order[::2]) for c in pair]
        for setting, e, n, kind in order:
            jobs = {"train": [("train", e)] * n, "evaluate": [("evaluate", e)],
                    "train+evaluate": [("train", e), ("evaluate", "eager")]}[kind]
            row = {"round": r, "setting": setting, "engine": e, "processes": len(jobs),
                   "kind": kind, "children": measure(jobs, setting)}
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
        for n in (1, 2) if r < ROUNDS else ():
            for setting in SETTINGS:
                row = {"round": r, "setting": setting, "processes": n,
                       "samples_per_second": command_rates(n, setting)}
                results["commands"].append(row)
                print(json.dumps(row), flush=True)
    results["summary"] = summary(results["runs"], results["commands"])
    (HERE / "contention.json").write_text(json.dumps(results, indent=2) + "\n")
    for line in results["summary"]:
        print(json.dumps(line))


def summary(runs, commands):
    """Per (setting, engine, kind, processes): the best total over the rounds, and the sum over
    the processes of each one's rate over the best rate of one such process alone under
    a fixed count (the behaviour before aevb chose): 1.0 shares the cores without loss."""
    best = {}
    for row in runs:
        key = (row["setting"], row["engine"], row["kind"], row["processes"])
        if key not in best or sum(c["samples_per_second"] for c in row["children"]) > sum(
                c["samples_per_second"] for c in best[key]["children"]):
            best[key] = row
    alone = {(c["kind"], c["engine"]): c["samples_per_second"]
             for (setting, e, kind, n), row in best.items() if setting == "fixed" and n == 1
             for c in row["children"]}
    out = []
    for (setting, e, kind, n), row in sorted(best.items()):
        rates = [c["samples_per_second"] for c in row["children"]]
        share = sum(c["samples_per_second"] / alone[c["kind"], c["engine"]]
                    for c in row["children"])
        out.append({"setting": setting, "engine": e, "kind": kind, "processes": n,
                    "each": [round(t) for t in rates], "threads": [c["threads"] for c in
                                                           row["children"]],
                    "vs_one_alone_fixed": round(share, 3)})
    # one alone, paired within each round: aevb's rate over the fixed count's, and their median
    for (e, kind) in sorted({(r["engine"], r["kind"]) for r in runs if r["processes"] == 1}):
        rate = {(r["round"], r["setting"]): r["children"][0]["samples_per_second"]
                for r in runs if r["processes"] == 1 and (r["engine"], r["kind"]) == (e, kind)}
        ratios = sorted(rate[k, "aevb"] / rate[k, "fixed"] for k, s in rate if s == "aevb")
        mid = len(ratios) // 2
        median = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
        out.append({"kind": "alone-paired", "engine": e, "of": kind,
                    "ratios": [round(t, 3) for t in ratios], "median": round(median, 3)})
    for setting in SETTINGS:
        for n in (1, 2):
            totals = [sum(c["samples_per_second"]) for c in commands
                      if c["setting"] == setting and c["processes"] == n]
            if totals:
                out.append({"setting": setting, "engine": "aevb train (auto)", "processes": n,
                            "kind": "command", "best_total": round(max(totals))})
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main()
