"""Monte Carlo EM (appendix E): its E-step samples the exact posterior of a linear-Gaussian
model, it raises the marginal likelihood on MNIST, and it resumes bitwise."""
import signal
import time

import numpy as np
import pytest
import scipy.stats
import torch
from cli_helpers import start
from linear_gaussian import LinearGaussian

import aevb
from aevb.algorithms.mcem import Chains, complete_log_likelihood, e_step
from aevb.model import VAE, ModelConfig, initialize
from aevb.rundir.evaluations import evaluate_run
from aevb.rundir.logs import read_metrics


def test_complete_log_likelihood_is_log_p_z_plus_log_p_x_given_z():
    model = LinearGaussian(scale=1.0)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 2, generator=g, dtype=torch.float64)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    w, b = model.w.detach().numpy(), model.b.detach().numpy()
    expected = [scipy.stats.multivariate_normal(np.zeros(2)).logpdf(zi) +
                scipy.stats.multivariate_normal(w @ zi + b, model.s**2 * np.eye(5)).logpdf(xi)
                for zi, xi in zip(z.numpy(), x.numpy())]
    np.testing.assert_allclose(complete_log_likelihood(model, x, z).detach().numpy(), expected,
                               rtol=1e-12)


def test_e_step_chains_sample_the_exact_posterior_at_the_tuned_acceptance():
    model = LinearGaussian(scale=1.0)
    x = torch.tensor([[0.5, -1.0, 2.0, 0.3, -0.7]], dtype=torch.float64).expand(500, 5)
    chains = Chains(torch.zeros(500, 2, dtype=torch.float64),
                    torch.tensor(1.5, dtype=torch.float64).log())  # too large a step at first
    g = torch.Generator().manual_seed(0)
    draws, rates = [], []
    for t in range(400):
        _, accept = e_step(model, x, chains, slice(None), 10, 0.9, g)
        if t >= 200:
            draws.append(chains.z.clone())  # e_step updates chains.z in place
            rates.append(float(accept.mean()))
    draws = torch.cat(draws).numpy()  # 100,000 correlated draws from 500 chains
    var = model.posterior_var().detach().numpy()
    mean = ((x[0] - model.b) @ model.w / model.s**2).detach().numpy() * var
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.03)  # sd of the mean ~0.01
    np.testing.assert_allclose(draws.var(0), var, rtol=0.05)
    assert abs(np.mean(rates) - 0.9) < 0.03, np.mean(rates)


def test_mcem_raises_the_marginal_likelihood_on_mnist_and_leaves_the_encoder(data_dir,
                                                                            tmp_path):
    cfg = aevb.resolve("mnist-paper", latent_dim=3, hidden=(100,), algorithm="mcem",
                       train_examples=1000, samples=3000, eval_points=2, eval_examples=200,
                       eval_likelihood=100, data_dir=str(data_dir), download=False,
                       out=str(tmp_path / "mcem"))
    run = aevb.train(cfg, progress=False)
    first, last = read_metrics(run)[0], read_metrics(run)[-1]
    assert first["test_elbo"] is None and last["train_elbo"] is None  # q was never trained
    # An untrained decoder gives every pixel probability ~1/2: 784 log 2 = 543.4 nats.
    assert abs(first["test_log_likelihood"] + 784 * np.log(2)) < 1.0
    # Measured here: -543.5 -> -192 nats on the test points after 3000 samples.
    assert last["test_log_likelihood"] > first["test_log_likelihood"] + 250, last
    fresh = VAE(ModelConfig((28, 28), 3, (100,), "bernoulli"))
    initialize(fresh, cfg.init_std, torch.Generator().manual_seed(cfg.seed))
    trained = aevb.load(run)
    for (name, a), b in zip(fresh.encoder.state_dict().items(),
                            trained.encoder.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(aevb.AevbError, match="hmc-harmonic"):
        evaluate_run(run, importance_samples=10, limit=5)
    result = evaluate_run(run, method="hmc-harmonic", importance_samples=20, limit=20)
    assert result.elbo is None and result.log_likelihood > -250


SETTINGS = ["--dataset", "digits", "--latent-dim", "3", "--hidden", "50", "--epochs", "5",
            "--algorithm", "mcem", "--eval-points", "6", "--eval-likelihood", "10",
            "--checkpoint-every", "1000", "--quiet"]


_run = start


def test_mcem_resumes_with_its_chains_bitwise(tmp_path):
    reference, out = tmp_path / "ref", tmp_path / "run"
    assert _run("train", *SETTINGS, "--out", str(reference)).wait(timeout=300) == 0
    proc = _run("train", *SETTINGS, "--out", str(out))
    deadline = time.time() + 120
    while len(read_metrics(out)) < 4 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, proc.stderr.read()
    resumed = _run("train", "--resume", str(out), "--quiet")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    keys = ("samples", "train_log_likelihood", "test_log_likelihood")
    assert [[m[k] for k in keys] for m in read_metrics(out)] == \
        [[m[k] for k in keys] for m in read_metrics(reference)]
    assert (out / "model.safetensors").read_bytes() == \
        (reference / "model.safetensors").read_bytes()
