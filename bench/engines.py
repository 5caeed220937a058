"""The training engines on seven models, against pythae 0.1.2, measured in one run on one machine.

    bash bench/setup_peer.sh                                   # once: the peer's own venv
    AEVB_DATA=../shared/data .venv/bin/python bench/engines.py # ~10 min on 2 cores

For each model (MODELS: the same networks, data, minibatch of 100 and optimizer for both
libraries) it times aevb's training step on each engine that serves the model (native,
compiled, eager: `aevb.algorithms`' `make_step`, as `aevb.train` runs it) and pythae's own trainer,
alternating ROUNDS times and keeping the best of each (the least disturbed measurement on
a noisy shared machine). torch.compile's compile time is measured apart (the first steps).
Writes bench/engines.json and docs/engines.md (generated: edit this script, not the page;
`--page-only` writes the page again from engines.json; `--cold-only` measures only the
compile times with an empty Inductor cache, into engines.json). Ratios only mean something within
one run.
"""
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import aevb
from aevb import algorithms, native
from aevb.compute import engine
from aevb.data import load_dataset
from aevb.model import VAE, ModelConfig, initialize
from aevb.training.build import make_optimizer

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("AEVB_DATA", HERE.parent.parent / "shared" / "data"))
ROUNDS, STEPS, PEER_POINTS = 4, 150, 10_000
if os.environ.get("AEVB_BENCH_QUICK"):  # a smoke run of the script itself (numbers useless)
    ROUNDS, STEPS, PEER_POINTS = 1, 3, 300

MODELS = {  # name: (description, dataset, TrainConfig overrides)
    "mnist-paper": ("784-500-20 tanh, Bernoulli, Adagrad 0.02, estimator B", "mnist",
                    dict(preset="mnist-paper")),
    "frey-paper": ("560-200-10 tanh, Gaussian decoder, Adagrad 0.01, estimator B", "frey-face",
                   dict(preset="frey-paper")),
    "iwae-k5": ("784-200-200-50 tanh, Bernoulli, Adam 0.001, IWAE bound k = 5", "mnist",
                dict(preset="mnist-paper", hidden=(200, 200), latent_dim=50, optimizer="adam",
                     lr=1e-3, estimator="iwae", mc_samples=5)),
    "conv": ("conv 32-64 + dense 256 each side, relu, N_z = 16, Bernoulli, Adam 0.001", "mnist",
             dict(preset="mnist-paper", network="conv", activation="relu", hidden=(256,),
                  latent_dim=16, optimizer="adam", lr=1e-3)),
    "vamp": ("784-200-200-50 tanh, VampPrior of 500 pseudo-inputs, Bernoulli, Adam 0.001, "
             "estimator B", "mnist",
             dict(preset="mnist-paper", hidden=(200, 200), latent_dim=50, optimizer="adam",
                  lr=1e-3, prior="vamp", prior_components=500)),
    "iaf": ("784-200-200-50 tanh, IAF posterior of 2 steps (one hidden layer of 200 each), "
            "Bernoulli, Adam 0.001, estimator B", "mnist",
            dict(preset="mnist-paper", hidden=(200, 200), latent_dim=50, optimizer="adam",
                 lr=1e-3, posterior="iaf", flow_steps=2)),
    "two-layer": ("two stochastic layers, 784-200-200-100 and 100-100-100-50 (Burda et al.), "
                  "Bernoulli, Adam 0.001, IWAE bound k = 5", "mnist",
                  dict(preset="mnist-paper", hidden=(200, 200), latent_dim=150,
                       top_latent_dim=50, top_hidden=(100, 100), optimizer="adam", lr=1e-3,
                       estimator="iwae", mc_samples=5)),
}
# pythae 0.1.2 has no model with two stochastic layers: none there, nor a goal.
GOALS = {"mnist-paper": 2.2, "frey-paper": 2.0, "iwae-k5": 1.5, "conv": 1.3, "vamp": 1.5,
         "iaf": 1.5, "two-layer": None}


def training_data(dataset):
    """The training points as the benchmark feeds both libraries: binary data binarized once
    (the same bits for both), real data as it is; float32 [N, D]."""
    data = load_dataset(dataset, data_dir=DATA, download=False)
    x = data.train.reshape(len(data.train), -1)
    if dataset == "mnist":
        x = (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < x).float()
    return x.contiguous(), data.shape


def model_for(cfg, shape):
    """The VAE that `aevb.train` builds for `cfg` (a TrainConfig) on data of `shape`."""
    return VAE(ModelConfig(shape, cfg.latent_dim, cfg.hidden, cfg.likelihood or "bernoulli",
                           cfg.network, cfg.activation, prior=cfg.prior,
                           prior_components=cfg.prior_components, posterior=cfg.posterior,
                           flow_steps=cfg.flow_steps, top_latent_dim=cfg.top_latent_dim,
                           top_hidden=cfg.top_hidden))


def our_step(name, x, shape, engine_name, return_model=False):
    """aevb's step for MODELS[name] on `engine_name`, as step(i) (and the model if asked)."""
    overrides = dict(MODELS[name][2])
    cfg = aevb.resolve(overrides.pop("preset"), **overrides, engine=engine_name)
    cfg = dataclasses.replace(cfg, likelihood=cfg.likelihood or "bernoulli", binarize=False)
    model = model_for(cfg, shape)
    gen = torch.Generator().manual_seed(0)
    initialize(model, cfg.init_std, gen)
    optimizer = make_optimizer(cfg, model, len(x), native_step=engine_name == "native")
    step = algorithms.get(cfg.algorithm).make_step(cfg, model, optimizer, None, engine_name)
    order = torch.randperm(len(x), generator=gen)
    batches = len(x) // 100

    def run(i):
        idx = order[i % batches * 100:][:100]
        step(x[idx], idx, gen)

    return (run, model) if return_model else run


def engines_for(name, x, shape):
    """The engines that serve MODELS[name] here, fastest-by-design first."""
    overrides = dict(MODELS[name][2])
    cfg = aevb.resolve(overrides.pop("preset"), **overrides)
    model = model_for(cfg, shape)
    out = []
    if cfg.estimator == "B" and native.unavailable_reason(model, cfg.optimizer,
                                                          torch.device("cpu")) is None:
        out.append("native")
    if engine.compile_unavailable_reason(torch.device("cpu")) is None:
        out.append("compiled")
    return out + ["eager"]


def time_steps(run, start, n):
    t = time.perf_counter()
    for i in range(start, start + n):
        run(i)
    return time.perf_counter() - t


def peer(name, npy):
    out = subprocess.run([str(HERE / ".venv-pythae" / "bin" / "python"),
                          str(HERE / "peer_models.py"), name, str(npy), str(PEER_POINTS),
                          str(100 * STEPS), "1"],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"pythae failed on {name}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["train_samples_per_second"]


MATMULS = ("mm", "addmm", "bmm", "baddbmm")


def recorded_products(run, i):
    """The matrix products of step `i` of `run` (eager), as [(aten op, args as (shape,
    stride) or scalars)], recorded by a dispatch mode."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ in MATMULS:
                seen.append((func, [(tuple(a.shape), a.stride()) if torch.is_tensor(a) else a
                                    for a in args]))
            return func(*args, **(kwargs or {}))

    with Record():
        run(i)
    return seen


def matmul_seconds(products, repeats=50):
    """Seconds per step of the recorded products alone, on fresh tensors of the same shapes
    and layouts (the best of three timings of `repeats` steps' worth)."""
    calls = [(f, [torch.empty_strided(*a).normal_() if isinstance(a, tuple) else a
                  for a in args]) for f, args in products]
    for f, args in calls:
        f(*args)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            for f, args in calls:
                f(*args)
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def product_flops(f, args):
    """2 x the multiply-adds of one recorded product: [.., m, k] @ [.., k, n]."""
    a, b = args[:2] if f.overloadpacket.__name__ in ("mm", "bmm") else args[1:3]
    return 2 * math.prod(a[0]) * b[0][-1]


def matmul_share(name, x, shape, rate):
    """The share of this machine's matmul rate that training at `rate` samples/s reaches: the
    step's own products timed alone, over the step's time (both per step of 100 points)."""
    run = our_step(name, x, shape, "eager")
    run(0)
    products = recorded_products(run, 1)
    flops = sum(product_flops(f, args) for f, args in products)
    alone = matmul_seconds(products)
    return {"products_per_step": len(products), "matmul_gflop_per_step": flops / 1e9,
            "matmul_seconds_per_step": alone, "step_seconds": 100 / rate,
            "share": alone / (100 / rate)}


def measure(name):
    dataset = MODELS[name][1]
    x, shape = training_data(dataset)
    npy = Path(tempfile.mkdtemp()) / "train.npy"
    np.save(npy, x[:PEER_POINTS].numpy())
    names = engines_for(name, x, shape)
    has_peer = GOALS[name] is not None
    runs, compile_seconds = {}, {}
    rates = {e: [] for e in [*names, *(["pythae"] if has_peer else [])]}
    for e in names:
        runs[e] = our_step(name, x, shape, e)
        compile_seconds[e] = time_steps(runs[e], 0, 3)  # compiles here where compiled
        time_steps(runs[e], 3, 20)  # warm
    for r in range(ROUNDS):
        for e in names:
            rates[e].append(100 * STEPS / time_steps(runs[e], 100 + r * STEPS, STEPS))
        if has_peer:
            rates["pythae"].append(peer(name, npy))
    best = {e: max(v) for e, v in rates.items()}
    ours = max(v for e, v in best.items() if e != "pythae")
    out = {} if has_peer else {"matmul": matmul_share(name, x, shape, ours)}
    return out | {"description": MODELS[name][0], "dataset": dataset, "engines": names,
            "samples_per_second": best, "all": rates,
            "first_three_steps_seconds": compile_seconds,
            "auto_engine": names[0] if names[0] == "native" else (
                "compiled" if "compiled" in names else "eager"),
            "fastest": max((e for e in names), key=lambda e: best[e]),
            "vs_pythae": ours / best["pythae"] if has_peer else None, "goal": GOALS[name]}


def cold_compile_seconds(name):
    """Seconds of the compiled step's first three steps for MODELS[name] in a fresh process
    with an empty Inductor cache (what the first run on a machine waits)."""
    with tempfile.TemporaryDirectory() as cache:
        code = ("import sys; sys.path.insert(0, %r); import engines; "
                "x, shape = engines.training_data(engines.MODELS[%r][1]); "
                "run = engines.our_step(%r, x, shape, 'compiled'); "
                "print(engines.time_steps(run, 0, 3))") % (str(HERE), name, name)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    torch.set_flush_denormal(True)  # as the `aevb` command does
    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cpus": os.cpu_count(), "torch": torch.__version__,
                           "threads": torch.get_num_threads(),
                           "date": time.strftime("%Y-%m-%d")},
               "rounds": ROUNDS, "steps": STEPS, "peer_points": PEER_POINTS,
               "models": {name: measure(name) for name in MODELS}}
    results["cold_compile_seconds"] = {name: cold_compile_seconds(name) for name in MODELS}
    (HERE / "engines.json").write_text(json.dumps(results, indent=2) + "\n")
    write_page(results)
    for name, m in results["models"].items():
        print(name, {k: round(v) for k, v in m["samples_per_second"].items()},
              f"{m['vs_pythae']:.2f}x" if m["vs_pythae"] else m["matmul"])


def write_page(r):
    m = r["machine"]
    lines = [
        "# Training engines: seven models against pythae",
        "",
        "<!-- generated by bench/engines.py from bench/engines.json; do not edit -->",
        "",
        f"Measured on {m['date']}: {m['processor'] or 'CPU'}, {m['cpus']} cores, "
        f"{m['threads']} torch threads, torch {m['torch']}, {m['platform']}; no GPU. "
        f"Each number is the best of {r['rounds']} alternating rounds "
        f"({r['steps']} steps of 100 points for aevb; for pythae, in its own trainer, as "
        f"many passes over the first {r['peer_points']:,} training points as make at least "
        "as many samples), in training samples per second. Both libraries "
        "get the same networks, data, minibatch of 100 and optimizer; binary data is "
        "binarized once for both. These hold for this CPU at this minibatch size in "
        "float32; on another CPU, minibatch or a GPU the order of the engines may differ. "
        "Re-make it with "
        "`bash bench/setup_peer.sh && AEVB_DATA=../shared/data .venv/bin/python "
        "bench/engines.py`.",
        "",
        "| model | native | compiled | eager | pythae 0.1.2 | aevb / pythae | goal | "
        "auto picks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, x in r["models"].items():
        s = x["samples_per_second"]
        cell = [f"{s[e]:,.0f}" if e in s else "—" for e in ("native", "compiled", "eager")]
        if x["goal"] is None:
            peer_cells = "none in pythae | — | —"
        else:
            peer_cells = (f"{s['pythae']:,.0f} | **{x['vs_pythae']:.2f}x** | ≥ {x['goal']}x "
                          f"({'met' if x['vs_pythae'] >= x['goal'] else 'not met'})")
        auto = x["auto_engine"] + ("" if x["auto_engine"] == x["fastest"]
                                   else f" (fastest here: {x['fastest']})")
        lines.append(f"| `{name}`: {x['description']} | {' | '.join(cell)} | {peer_cells} | "
                     f"{auto} |")
    for name, x in r["models"].items():
        if "matmul" in x:
            mm = x["matmul"]
            lines += ["", f"`{name}` has no counterpart in pythae. Its step's "
                      f"{mm['products_per_step']} matrix products "
                      f"({mm['matmul_gflop_per_step']:.3f} GFLOP per step of 100 points), "
                      "timed alone on fresh tensors of the same shapes, take "
                      f"{mm['matmul_seconds_per_step'] * 1e3:.2f} ms; the fastest engine's "
                      f"whole step takes {mm['step_seconds'] * 1e3:.2f} ms: it runs at "
                      f"**{mm['share']:.0%}** of this machine's rate for its own products."]
    lines += ["", "The first three steps (torch.compile's compile time, with the Inductor "
              "cache of this machine) took, in seconds:", ""]
    for name, x in r["models"].items():
        t = x["first_three_steps_seconds"]
        lines.append(f"- `{name}`: " + ", ".join(f"{e} {v:.1f}" for e, v in t.items()))
    ratios = {name: x["samples_per_second"]["native"] / x["samples_per_second"]["compiled"]
              for name, x in r["models"].items()
              if {"native", "compiled"} <= set(x["samples_per_second"])}
    if ratios:
        lines += ["", "The native step is kept where it is at least 1.3x faster than the "
                  "compiled step of the same model; in this run it is "
                  + " and ".join(f"**{v:.2f}x** on `{k}`" for k, v in ratios.items()) + "."]
    lines += ["", "Where `compiled` and `eager` differ by a few percent (the convolutional "
              "model) the difference is within this machine's noise: Inductor hands the "
              "convolutions to the same oneDNN kernels that eager PyTorch calls, so only the "
              "element-wise work around them is fused."]
    cold = r.get("cold_compile_seconds")
    if cold:
        lines += ["", "With an empty Inductor cache (the first run on a machine; a fresh "
                  "process per model) the compiled step's first three steps took "
                  + ", ".join(f"{v:.1f} s (`{k}`)" for k, v in cold.items())
                  + ": the reason `--engine auto` compiles only runs of at least 20,000 steps. "
                  "A VampPrior model is the exception: its eager step is several times slower "
                  "than its compiled one (the mixture density over every pseudo-input's "
                  "posterior, unfused), so compiling pays within about a thousand steps and "
                  "auto compiles its runs from 1,000 steps on "
                  "(`priors.vamp.VampPrior.COMPILE_MIN_STEPS`)."]
    (HERE.parent / "docs" / "engines.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if "--cold-only" in sys.argv:  # add the cold-cache compile times to engines.json
        saved = json.loads((HERE / "engines.json").read_text())
        saved["cold_compile_seconds"] = {name: cold_compile_seconds(name) for name in MODELS}
        (HERE / "engines.json").write_text(json.dumps(saved, indent=2) + "\n")
        write_page(saved)
    elif "--page-only" in sys.argv:
        write_page(json.loads((HERE / "engines.json").read_text()))
    else:
        main()
