"""How far K = 1000 importance sampling can go past pythae's `get_nll` on this machine: the
floor that the matrix products alone put under aevb's estimator, in one run.

    bash bench/setup_peer.sh
    AEVB_DATA=../shared/data .venv/bin/python bench/is_floor.py

Both estimate log p(x) of 100 binarized MNIST test images with K = 1000 on the paper's model
(784-500-20, tanh, Bernoulli). pythae runs its encoder on 1000 copies of each image and its
decoder on the 1000 draws; aevb's estimator encodes each image once. The floor is aevb's
multiply-adds divided by the fp32 rate of the same process on the estimator's largest product
(rows of one 16 MB chunk x 500 -> 784): the time if everything else (tanh, softplus, the
noise, logsumexp) were free and every product ran at that rate. Writes bench/is_floor.json.
"""
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import aevb
from aevb.data import load_dataset
from aevb.evaluation.evaluate import evaluation_set
from aevb.evaluation.importance import CHUNK_ELEMENTS, importance_log_likelihood

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("AEVB_DATA", HERE.parent.parent / "shared" / "data"))
K, POINTS, D, H, J, ROUNDS = 1000, 100, 784, 500, 20, 3


def gemm_rate(rows: int, repeats: int = 30) -> float:
    """fp32 multiply-adds per second of [rows, H] x [H, D] in this process (the best of 3)."""
    a, w = torch.randn(rows, H), torch.randn(H, D)
    best = 0.0
    for _ in range(3):
        a @ w
        start = time.perf_counter()
        for _ in range(repeats):
            a @ w
        best = max(best, rows * H * D * repeats / (time.perf_counter() - start))
    return best


def bf16_gap(model, x: torch.Tensor, k: int = K) -> tuple[float, float]:
    """(largest |log p(x) with the decoder's last product in bf16 - in fp32| over the rows of
    x, in nats, same noise; bf16 GFLOP/s of that product): what a faster arithmetic costs."""
    from aevb.maths.distributions import log_mean_exp, q_sample

    with torch.no_grad():
        q = model.encode(x)
        z = q_sample(q, torch.randn(k, len(x), J, generator=torch.Generator().manual_seed(0)))
        p = model.decode(z)  # AffineBernoulli: h [K, N, H], weight [D, H], bias [D]
        rest = model.prior().log_prob(z) - q.log_prob(z)  # [K, N]
        estimates = []
        for dtype in (torch.float32, torch.bfloat16):
            logits = (p.h.to(dtype) @ p.weight.t().to(dtype)).float() + p.bias  # [K, N, D]
            log_px_z = (x * logits - torch.nn.functional.softplus(logits)).sum(-1)
            estimates.append(log_mean_exp(log_px_z + rest, 0))  # [N]
        a, w = torch.randn(5300, H).bfloat16(), torch.randn(H, D).bfloat16()
        a @ w
        start = time.perf_counter()
        for _ in range(30):
            a @ w
        rate = 2 * 5300 * H * D * 30 / (time.perf_counter() - start) / 1e9
    return float((estimates[0] - estimates[1]).abs().max()), rate


def main():
    torch.set_flush_denormal(True)  # as the `aevb` command does
    mnist = load_dataset("mnist", data_dir=DATA, download=False)
    test = evaluation_set(mnist.test, "test", 0, True)[:POINTS]
    test_file = Path(tempfile.mkdtemp()) / "test100.npy"
    np.save(test_file, test.numpy())
    # a trained model, as in bench/run.py: the bf16 gap depends on the size of the logits
    run = aevb.train(aevb.resolve("mnist-paper", samples=120_000, eval_points=1,
                                  eval_examples=100, out=str(Path(tempfile.mkdtemp()) / "run")),
                     progress=False)
    model = aevb.load(run).eval()
    rows = max(1, CHUNK_ELEMENTS // (POINTS * D)) * POINTS  # the estimator's chunk
    ours_macs = K * POINTS * (J * H + H * D) + POINTS * (D * H + H * 2 * J)
    peer_macs = K * POINTS * (D * H + H * 2 * J + J * H + H * D)
    rounds = []
    importance_log_likelihood(model, test[:5], K, seed=0)  # warm-up
    for _ in range(ROUNDS):  # alternating, each keeps its best
        out = subprocess.run([str(HERE / ".venv-pythae" / "bin" / "python"),
                              str(HERE / "peer_pythae.py"), str(DATA / "mnist"), str(test_file)],
                             capture_output=True, text=True, check=True)
        peer = json.loads(out.stdout.strip().splitlines()[-1])["nll_seconds"]
        start = time.perf_counter()
        importance_log_likelihood(model, test, K, seed=0)
        ours = time.perf_counter() - start
        rounds.append({"pythae_seconds": peer, "aevb_seconds": ours,
                       "gemm_macs_per_second": gemm_rate(rows)})
    peer = min(r["pythae_seconds"] for r in rounds)
    ours = min(r["aevb_seconds"] for r in rounds)
    rate = max(r["gemm_macs_per_second"] for r in rounds)
    floor = ours_macs / rate
    gap, bf16_gflops = bf16_gap(model, test[:20])
    result = {
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "native": aevb.native.library.load() is not None},
        "k": K, "points": POINTS, "chunk_rows": rows,
        "aevb_macs": ours_macs, "pythae_macs": peer_macs,
        "gemm_gflops": 2 * rate / 1e9,
        "pythae_seconds": peer, "aevb_seconds": ours, "aevb_floor_seconds": floor,
        "ratio": peer / ours, "ceiling_ratio": peer / floor,
        "aevb_share_of_floor": floor / ours,
        "pythae_gflops": 2 * peer_macs / peer / 1e9, "aevb_gflops": 2 * ours_macs / ours / 1e9,
        "bf16_gflops": bf16_gflops, "bf16_max_gap_nats": gap,
        "rounds": rounds,
    }
    (HERE / "is_floor.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))


if __name__ == "__main__":
    main()
