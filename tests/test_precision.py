"""Importance sampling with the decoder's last product in bf16 (`--method importance-bf16`):
how far it moves log p(x) of a trained MNIST model from float32 and float64, and where it is
refused."""
import json
import os

import numpy as np
import pytest
import torch
from cli_helpers import cli, one_error_line

import aevb
from aevb.data import load_dataset
from aevb.evaluation.evaluate import evaluation_set
from aevb.evaluation.importance import importance_log_likelihood
from aevb.maths.objectives import iwae_bound


@pytest.fixture(scope="module")
def mnist_run(data_dir, tmp_path_factory, lib):
    out = tmp_path_factory.mktemp("bf16") / "run"
    cfg = aevb.resolve("mnist-paper", samples=60_000, eval_points=1, eval_examples=100,
                       out=str(out), download=False)
    return aevb.train(cfg, progress=False)


def test_bf16_products_stay_within_five_hundredths_of_a_nat_of_float64(mnist_run, data_dir):
    model = aevb.load(mnist_run).eval()
    test = evaluation_set(load_dataset("mnist", data_dir=data_dir, download=False).test,
                          "test", 0, True)[:30]
    fp32 = importance_log_likelihood(model, test, 1000, seed=4)
    bf16 = importance_log_likelihood(model, test, 1000, seed=4, products=torch.bfloat16)
    # the truth: float64 with the same noise (the estimator's first draws of seed 4)
    eps = torch.randn(1000, 30, 20, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        fp64 = iwae_bound(model.double(), test.double(), eps.double())
    gap = (bf16.double() - fp64).abs().max().item()
    assert 0 < gap <= 0.05, gap
    assert (fp32.double() - fp64).abs().max().item() < 1e-3  # the same noise indeed
    assert (bf16 != fp32).any()  # the products did change


def test_the_command_records_the_method_and_refuses_what_the_native_pass_cannot_serve(
        mnist_run, data_dir, tmp_path):
    r = cli("evaluate", mnist_run, "--importance-samples", "50", "--limit", "20", "--json",
            "--method", "importance-bf16", env={**os.environ, "AEVB_DATA": str(data_dir)})
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["method"] == "importance-bf16" and np.isfinite(record["log_likelihood"])
    run = aevb.train(aevb.resolve(dataset="digits", latent_dim=2, hidden=(16,), samples=2000,
                                  eval_points=1, prior="mixture", out=str(tmp_path / "mix"),
                                  download=False), progress=False)
    assert "native log-weights pass" in one_error_line(
        cli("evaluate", run, "--importance-samples", "50", "--method", "importance-bf16"))
