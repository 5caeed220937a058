"""aevb.priors: p(z) as a module behind one registry; the mixture-of-Gaussians prior (the
worked example of docs/architecture.md) against scipy, and trained and evaluated end to end."""
import json

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

import aevb
from aevb import priors
from aevb.maths.distributions import diagonal_gaussian, kl_to_prior, kl_to_standard_normal
from aevb.rundir.checkpoint import read_config
from aevb.rundir.evaluations import evaluate_run
from aevb.rundir.logs import read_metrics


def _mixture(seed=0, latent=3, k=4):
    prior = priors.make("mixture", latent)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        prior.logits.copy_(torch.randn(prior.logits.shape, generator=g))
        prior.loc.copy_(2 * torch.randn(prior.loc.shape, generator=g))
        prior.log_scale.copy_(0.3 * torch.randn(prior.log_scale.shape, generator=g))
    return prior.double()


def test_mixture_log_density_is_scipys():
    prior = _mixture()
    z = torch.randn(6, 5, 3, dtype=torch.float64)
    pi = torch.softmax(prior.logits, 0).detach().numpy()
    loc, scale = prior.loc.detach().numpy(), prior.log_scale.exp().detach().numpy()
    flat = z.reshape(-1, 3).numpy()
    per_component = np.stack([stats.multivariate_normal(loc[k], np.diag(scale[k] ** 2))
                              .logpdf(flat) for k in range(len(pi))])  # [K, 30]
    expected = logsumexp(per_component + np.log(pi)[:, None], axis=0).reshape(6, 5)
    np.testing.assert_allclose(prior().log_prob(z).detach().numpy(), expected, rtol=1e-10)


def test_mixture_draws_have_its_moments():
    prior = _mixture(seed=1)
    z = prior.sample(200_000, torch.Generator().manual_seed(3)).detach().numpy()
    pi = torch.softmax(prior.logits, 0).detach().numpy()
    loc, var = prior.loc.detach().numpy(), (2 * prior.log_scale).exp().detach().numpy()
    mean = pi @ loc
    second = pi @ (var + loc**2)
    stderr = np.sqrt((second - mean**2) / len(z))
    assert np.all(np.abs(z.mean(0) - mean) < 5 * stderr)
    np.testing.assert_allclose(z.var(0), second - mean**2, rtol=0.03)


def test_kl_is_closed_form_for_the_standard_normal_and_unbiased_for_a_mixture():
    g = torch.Generator().manual_seed(4)
    q = diagonal_gaussian(torch.randn(5, 3, generator=g, dtype=torch.float64),
                          torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.3)
    eps = torch.randn(100_000, 5, 3, generator=g, dtype=torch.float64)
    z = q.base_dist.loc + q.base_dist.scale * eps
    standard = priors.make("standard-normal", 3).double()
    assert torch.equal(kl_to_prior(q, standard(), z), kl_to_standard_normal(q))
    mixture = _mixture(seed=2)
    estimate = kl_to_prior(q, mixture(), z).detach().numpy()
    # the truth by a separate float64 quadrature-free route: scipy's densities on fresh draws
    fresh = (q.base_dist.loc + q.base_dist.scale * torch.randn(
        100_000, 5, 3, generator=g, dtype=torch.float64)).numpy()
    pi = torch.softmax(mixture.logits, 0).detach().numpy()
    loc, scale = mixture.loc.detach().numpy(), mixture.log_scale.exp().detach().numpy()
    mu, sigma = q.base_dist.loc.numpy(), q.base_dist.scale.numpy()
    log_q = stats.norm(mu, sigma).logpdf(fresh).sum(-1)  # [S, 5]
    log_p = logsumexp(np.stack([stats.norm(loc[k], scale[k]).logpdf(fresh).sum(-1)
                                + np.log(pi[k]) for k in range(len(pi))]), axis=0)
    diff = log_q - log_p
    stderr = diff.std(0) / np.sqrt(len(diff)) * np.sqrt(2)
    assert np.all(np.abs(estimate - diff.mean(0)) < 5 * stderr)


def test_a_mixture_prior_trains_evaluates_and_reloads(tmp_path):
    run = aevb.train(aevb.resolve(dataset="digits", latent_dim=4, hidden=(64,), epochs=30,
                                  lr=0.05, eval_points=3, prior="mixture", download=False,
                                  out=str(tmp_path / "mix")), progress=False)
    info = read_config(run)
    assert info["model"]["prior"] == "mixture" and info["config"]["prior"] == "mixture"
    assert "N(0, I) prior" in info["engine"]["reason"]  # the native step does not serve it
    metrics = read_metrics(run)
    assert metrics[-1]["test_elbo"] > metrics[0]["test_elbo"] + 5
    model = aevb.load(run)
    assert model.p_z.loc.detach().abs().max() > 0.1  # trained: it started at N(0, 0.01^2)
    result = evaluate_run(run, importance_samples=500)
    # Importance sampling (K = 500) lies above the bound (K = 1) and below 0 nats.
    assert metrics[-1]["test_elbo"] < result.log_likelihood < 0
    # Active units do not depend on the prior; a KL per dimension to N(0, 1) would not be what
    # a mixture prior's bound pays, so none is given.
    assert 0 <= result.active_units <= 4 and result.kl_per_dimension is None
    assert (run / "report.html").exists() and not (run / "explorer.html").exists()
    manifest = json.loads((run / "manifest.json").read_text())
    assert "model.safetensors" in json.dumps(manifest)


def test_an_unknown_prior_is_refused_in_one_line():
    with pytest.raises(aevb.AevbError, match="prior must be one of standard-normal, mixture"):
        aevb.resolve(prior="gamma")


def test_the_report_gives_active_units_without_a_kl_per_dimension():
    from aevb.outputs.report import _evaluation_html

    record = {"elbo": -90.0, "split": "test", "importance_samples": 500, "n": 10,
              "log_likelihood": -88.0, "active_units": 3, "kl_per_dimension": None}
    page = _evaluation_html(record)
    assert "Active latent units: <b>3</b>.</p>" in page and "KL per dimension" not in page
    page = _evaluation_html({**record, "kl_per_dimension": [0.5, 0.0, 1.25]})
    assert "<b>3</b> of 3; KL per dimension: 0.50, 0.00, 1.25 nats" in page
