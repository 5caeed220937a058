"""Full variational Bayes over theta (appendix F, aevb.full_vb) against closed forms, MAP and
its own resumed runs."""
import json
import math
import signal
import time

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from cli_helpers import cli, start
from torch import nn

import aevb
from aevb.algorithms.full_vb import FullVbStep
from aevb.algorithms.sgvb import AevbStep
from aevb.evaluation.evaluate import average_bound, importance_log_likelihood
from aevb.evaluation.importance import predictive_log_likelihood
from aevb.full_vb import ParameterPosterior, UnderTheta, full_vb_bound, std_summary
from aevb.maths.distributions import diagonal_gaussian, standard_normal
from aevb.maths.objectives import elbo_b
from aevb.model import VAE, ModelConfig, initialize
from aevb.rundir.logs import read_metrics


def test_kl_to_the_prior_matches_numerical_integration():
    # One scalar parameter at a time: KL(N(mu, s^2) || N(0, a^2)) = int q log(q / p), by quad.
    for mu, s, a in [(0.3, 0.05, 1.0), (-1.2, 0.8, 0.5), (0.0, 2.0, 3.0)]:
        decoder = nn.Linear(1, 1, bias=False).double()
        with torch.no_grad():
            decoder.weight.fill_(mu)
        posterior = ParameterPosterior(decoder, init_std=s).double()
        q, p = scipy.stats.norm(mu, s), scipy.stats.norm(0, a)
        exact, _ = scipy.integrate.quad(lambda t: q.pdf(t) * (q.logpdf(t) - p.logpdf(t)),
                                        mu - 12 * s, mu + 12 * s, epsabs=1e-12)
        assert float(posterior.kl(decoder, a).detach()) == pytest.approx(exact, rel=1e-7, abs=1e-9)


def test_kl_sums_over_every_parameter_tensor():
    decoder = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 5)).double()
    posterior = ParameterPosterior(decoder).double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for log_std in posterior.log_std:
            log_std.copy_(torch.randn(log_std.shape, generator=g, dtype=torch.float64) - 2)
    alpha = 0.7
    mu = np.concatenate([p.detach().numpy().ravel() for p in decoder.parameters()])
    s = np.exp(np.concatenate([t.detach().numpy().ravel() for t in posterior.log_std]))
    expected = np.sum(np.log(alpha / s) + (s**2 + mu**2) / (2 * alpha**2) - 0.5)
    assert float(posterior.kl(decoder, alpha).detach()) == pytest.approx(expected, rel=1e-12)


class _LinearGaussianBayes(nn.Module):
    """The conjugate case of the bound's test: p(z) = N(0, I), p(x|z, theta) = N(Wz + b, s^2 I)
    with theta = (W, b) ~ q(theta) mean-field Gaussian, and a fixed linear Gaussian q(z|x)."""

    def __init__(self, d=4, j=2, s=0.6, alpha=1.5):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.s = s
        self.decoder = _LinearGaussianDecoder(j, d, s)
        self.encoder_w = torch.randn(d, 2 * j, generator=g, dtype=torch.float64) * 0.3
        with torch.no_grad():
            for p in self.decoder.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        self.theta_posterior = ParameterPosterior(self.decoder).double()
        with torch.no_grad():
            for log_std in self.theta_posterior.log_std:
                log_std.copy_(torch.randn(log_std.shape, generator=g, dtype=torch.float64) * 0.3
                              - 1.0)

        class Config:
            latent_dim = j
            theta_prior_std = alpha
        self.config = Config()

    def encode(self, x):
        mu, log_var = (x @ self.encoder_w).chunk(2, dim=-1)
        return diagonal_gaussian(mu, log_var - 1.0)

    def decode(self, z):
        return self.decoder(z)

    def prior(self):
        return standard_normal(self.config.latent_dim, dtype=torch.float64)

    def exact_bound(self, x):
        """E_q(theta) E_q(z|x)[log p(x|z, theta)] - KL(q(z|x) || p(z)) - KL(q(theta)||p(theta))/n
        with n = 1, in closed form: W, b and z are independent Gaussians under q, so
        E||x - Wz - b||^2 = sum_d (x_d - mu_w_d . m - mu_b_d)^2 + Var(w_d . z) + s_b_d^2,
        Var(w_d . z) = sum_j (mu_w_dj^2 + s_w_dj^2)(m_j^2 + v_j) - mu_w_dj^2 m_j^2."""
        q = self.encode(x)
        m, v = q.mean, q.variance  # [N, J]
        mu_w, mu_b = self.decoder.lin.weight, self.decoder.lin.bias  # [D, J], [D]
        s_w, s_b = (t.exp() for t in self.theta_posterior.log_std)
        mean_sq = (x - m @ mu_w.T - mu_b) ** 2
        var = ((mu_w**2 + s_w**2) @ (m**2 + v).T).T - (mu_w**2 @ (m**2).T).T + s_b**2
        d = x.shape[1]
        recon = -0.5 * d * math.log(2 * math.pi * self.s**2) - (mean_sq + var).sum(1) / (
            2 * self.s**2)
        kl_z = 0.5 * (m**2 + v - v.log() - 1).sum(1)
        kl_theta = self.theta_posterior.kl(self.decoder, self.config.theta_prior_std)
        return recon - kl_z - kl_theta


class _LinearGaussianDecoder(nn.Module):
    def __init__(self, j, d, s):
        super().__init__()
        self.lin = nn.Linear(j, d).double()
        self.s = s

    def forward(self, z):
        loc = self.lin(z)
        return torch.distributions.Independent(
            torch.distributions.Normal(loc, torch.full_like(loc, self.s)), 1)


def test_bound_estimator_averages_to_its_closed_form_in_the_linear_gaussian_case():
    model = _LinearGaussianBayes()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    draws = []
    with torch.no_grad():
        for _ in range(20000):
            eps = torch.randn(1, 3, 2, generator=g, dtype=torch.float64)
            draws.append(full_vb_bound(model, x, eps, model.theta_posterior.noise(g), n_data=1))
    draws = torch.stack(draws)  # [R, N]
    mean, error = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    exact = model.exact_bound(x)
    assert torch.all((mean - exact).abs() < 4 * error), (mean, exact, error)
    # And the test can fail: sigma of theta matters to the exact value by many errors.
    with torch.no_grad():
        for log_std in model.theta_posterior.log_std:
            log_std += 0.5
    assert torch.all((mean - model.exact_bound(x)).abs() > 10 * error)


def _vae(prior_std=1.0, seed=0):
    model = VAE(ModelConfig((8, 8), latent_dim=2, hidden=(16,), theta_prior_std=prior_std))
    initialize(model, 0.1, torch.Generator().manual_seed(seed))
    return model


def test_theta_draws_change_the_decoder_and_the_posterior_mean_is_the_decoder():
    model = _vae()
    z = torch.randn(5, 2)
    g = torch.Generator().manual_seed(0)
    theta = model.theta_posterior.draw(model.decoder, model.theta_posterior.noise(g))
    under = UnderTheta(model, theta)
    assert not torch.allclose(under.decode(z).mean, model.decode(z).mean)
    zero = [torch.zeros_like(t) for t in model.theta_posterior.log_std]
    mean_theta = model.theta_posterior.draw(model.decoder, zero)
    torch.testing.assert_close(UnderTheta(model, mean_theta).decode(z).mean,
                               model.decode(z).mean)
    summary = std_summary(model)
    assert [s.name for s in summary] == [n for n, _ in model.decoder.named_parameters()]
    assert all(s.mean == pytest.approx(0.01) for s in summary)


def test_predictive_likelihood_of_a_near_point_posterior_is_the_point_likelihood():
    model = _vae()
    with torch.no_grad():
        for log_std in model.theta_posterior.log_std:
            log_std.fill_(math.log(1e-7))
    x = torch.bernoulli(torch.full((20, 64), 0.3), generator=torch.Generator().manual_seed(3))
    predictive = predictive_log_likelihood(model, x, k=3000, seed=0)
    point = importance_log_likelihood(model, x, 3000, seed=1)
    assert torch.allclose(predictive, point, atol=0.05)
    # With a wide posterior the predictive likelihood is another number.
    with torch.no_grad():
        for log_std in model.theta_posterior.log_std:
            log_std.fill_(0.0)
    wide = predictive_log_likelihood(model, x, k=300, seed=0)
    assert (wide - point).abs().mean() > 1.0


def test_full_vb_with_sigma_held_near_zero_and_a_wide_prior_trains_like_map(data_dir):
    from aevb.data import load_dataset

    x = load_dataset("digits").train.float()
    x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    vb, point = _vae(prior_std=1e4, seed=4), _vae(prior_std=None, seed=4)
    with torch.no_grad():
        for log_std in vb.theta_posterior.log_std:
            log_std.fill_(math.log(1e-6))
            log_std.requires_grad_(False)
    steps = {"vb": FullVbStep(vb, torch.optim.Adagrad(vb.parameters(), lr=0.05), 1, len(x)),
             "map": AevbStep(point, torch.optim.Adagrad(point.parameters(), lr=0.05), elbo_b, 1)}
    for name, model in (("vb", vb), ("map", point)):
        g = torch.Generator().manual_seed(5)
        for epoch in range(15):
            for idx in torch.randperm(len(x), generator=g).split(100):
                steps[name](x[idx], idx, g)
    before = average_bound(_vae(seed=4), x, seed=9)
    bound_vb, bound_map = average_bound(vb, x, seed=9), average_bound(point, x, seed=9)
    assert bound_map > before + 5  # both trained
    assert bound_vb == pytest.approx(bound_map, abs=1.0)
    assert vb.theta_posterior.log_std[0][0, 0] == pytest.approx(math.log(1e-6))


SETTINGS = ["--dataset", "digits", "--latent-dim", "2", "--hidden", "40", "--epochs", "12",
            "--algorithm", "full-vb", "--eval-points", "8", "--checkpoint-every", "1500",
            "--quiet"]


_aevb = start


def test_full_vb_run_resumes_bitwise_and_is_evaluated_with_its_posterior(tmp_path):
    reference, out = tmp_path / "ref", tmp_path / "run"
    proc = _aevb("train", *SETTINGS, "--out", str(reference))
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    proc = _aevb("train", *SETTINGS, "--out", str(out))
    deadline = time.time() + 120
    while len(read_metrics(out) if (out / "metrics.jsonl").exists() else []) < 5 \
            and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, proc.stderr.read()
    assert aevb.rundir.checkpoint.read_progress(out)["samples"] < 12 * 1617
    resumed = _aevb("train", "--resume", str(out), "--quiet")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert read_metrics(out) == [dict(m, seconds=n["seconds"],
                                      samples_per_second=n["samples_per_second"])
                                 for m, n in zip(read_metrics(reference), read_metrics(out))]
    assert (out / "model.safetensors").read_bytes() == \
        (reference / "model.safetensors").read_bytes()
    assert (out / "theta-draws.png").exists()

    done = cli("evaluate", str(out), "--json", "--importance-samples", "50")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [s["name"] for s in result["posterior_std"]] == \
        ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
    # The appendix F bound lies below the predictive likelihood: it also pays KL over theta.
    assert result["elbo"] < result["log_likelihood"]
    assert result["elbo"] == pytest.approx(read_metrics(out)[-1]["test_elbo"], abs=1e-9)
    refused = cli("evaluate", str(out), "--method", "hmc-harmonic")
    assert refused.returncode == 2 and "full-vb" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_full_vb_needs_its_prior():
    done = cli("train", "--dataset", "digits", "--algorithm", "full-vb", "--weight-prior-std",
               "none")
    assert done.returncode == 2 and "full-vb needs the prior" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
