"""The probability maths against closed forms, scipy.stats and float64 Monte Carlo."""
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from aevb.maths.distributions import (AffineBernoulli, binarize, diagonal_gaussian,
                                      kl_to_standard_normal, log_mean_exp, q_sample,
                                      standard_normal)
from aevb.networks.mlp import BernoulliDecoder, GaussianDecoder, GaussianEncoder


def _q(seed=0, n=5, j=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, j, generator=g, dtype=dtype)
    log_var = torch.randn(n, j, generator=g, dtype=dtype)
    return diagonal_gaussian(mu, log_var), mu.numpy(), np.exp(0.5 * log_var.numpy())


def test_kl_matches_closed_form_written_independently():
    q, mu, sigma = _q()
    # KL(N(mu, s^2) || N(0, 1)) = log(1/s) + (s^2 + mu^2) / 2 - 1/2, summed over dimensions.
    expected = (np.log(1 / sigma) + (sigma**2 + mu**2) / 2 - 0.5).sum(-1)
    np.testing.assert_allclose(kl_to_standard_normal(q).numpy(), expected, rtol=1e-12)


def test_kl_matches_float64_monte_carlo():
    q, mu, sigma = _q(seed=1)
    rng = np.random.default_rng(0)
    z = mu + sigma * rng.standard_normal((400_000, *mu.shape))
    log_q = scipy.stats.norm.logpdf(z, mu, sigma).sum(-1)
    log_p = scipy.stats.norm.logpdf(z).sum(-1)
    diff = log_q - log_p  # [S, N]
    stderr = diff.std(0) / math.sqrt(len(diff))
    estimate = diff.mean(0)
    assert np.all(np.abs(estimate - kl_to_standard_normal(q).numpy()) < 5 * stderr + 1e-9)


def test_q_sample_is_mu_plus_sigma_eps_with_the_right_moments():
    q, mu, sigma = _q(seed=2)
    eps = torch.randn(200_000, *mu.shape, generator=torch.Generator().manual_seed(3),
                      dtype=torch.float64)
    z = q_sample(q, eps).numpy()
    np.testing.assert_allclose(z[7], mu + sigma * eps[7].numpy(), rtol=1e-12)
    np.testing.assert_allclose(z.mean(0), mu, atol=5 * sigma.max() / math.sqrt(len(z)))
    np.testing.assert_allclose(z.std(0), sigma, rtol=0.01)


def test_gaussian_log_prob_matches_scipy():
    q, mu, sigma = _q(seed=4)
    z = torch.randn(2, *mu.shape, dtype=torch.float64)
    expected = scipy.stats.norm.logpdf(z.numpy(), mu, sigma).sum(-1)
    np.testing.assert_allclose(q.log_prob(z).numpy(), expected, rtol=1e-10)
    prior = standard_normal(3, dtype=torch.float64)
    np.testing.assert_allclose(prior.log_prob(z).numpy(),
                               scipy.stats.norm.logpdf(z.numpy()).sum(-1), rtol=1e-10)


def test_bernoulli_decoder_log_prob_matches_scipy():
    torch.manual_seed(0)
    dec = BernoulliDecoder(3, [7], 10).double()
    z = torch.randn(4, 3, dtype=torch.float64)
    x = torch.bernoulli(torch.full((4, 10), 0.3, dtype=torch.float64))
    p = dec(z)
    y = torch.sigmoid(dec.net(z)).detach().numpy()
    expected = scipy.stats.bernoulli.logpmf(x.numpy(), y).sum(-1)
    np.testing.assert_allclose(p.log_prob(x).detach().numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(p.mean.detach().numpy(), y, rtol=1e-12)


@pytest.mark.parametrize("k", [None, 1, 3, 50])  # no sample axis, and K samples per x
def test_affine_bernoulli_log_prob_and_gradients_match_scipy_and_torch(k):
    g = torch.Generator().manual_seed(5)
    h = torch.randn(*(() if k is None else (k,)), 6, 7, generator=g, dtype=torch.float64)
    h.requires_grad_(True)
    w = torch.randn(10, 7, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(10, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.bernoulli(torch.full((6, 10), 0.4, dtype=torch.float64), generator=g)
    p = AffineBernoulli(h, w, b)
    assert p.batch_shape == h.shape[:-1] and p.event_shape == (10,)
    y = scipy.special.expit((h @ w.T + b).detach().numpy())
    expected = scipy.stats.bernoulli.logpmf(np.broadcast_to(x.numpy(), y.shape), y).sum(-1)
    value = p.log_prob(x)
    np.testing.assert_allclose(value.detach().numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(p.mean.detach().numpy(), y, rtol=1e-12)
    # Gradients (what training differentiates) equal those of torch's own Bernoulli.
    reference = torch.distributions.Independent(
        torch.distributions.Bernoulli(logits=h @ w.T + b), 1).log_prob(x)
    grads = torch.autograd.grad(value.sum(), (h, w, b))
    for got, want in zip(grads, torch.autograd.grad(reference.sum(), (h, w, b))):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_binarize_draws_each_element_with_its_probability():
    probs = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(40_000, 1)
    bits = binarize(probs, torch.Generator().manual_seed(0))
    assert set(bits.unique().tolist()) == {0.0, 1.0} and bits.dtype == probs.dtype
    # Frequencies within 5 binomial standard errors (sd <= 0.5 / sqrt(40,000) = 0.0025).
    np.testing.assert_allclose(bits.mean(0).numpy(), [0, 0.1, 0.5, 0.9, 1], atol=0.0125)
    # One seed, one result: the very bits torch.bernoulli draws from the same generator.
    assert torch.equal(bits, torch.bernoulli(probs, generator=torch.Generator().manual_seed(0)))


def test_gaussian_decoder_log_prob_matches_scipy_and_mean_lies_in_unit_interval():
    torch.manual_seed(1)
    dec = GaussianDecoder(3, [7], 10).double()
    z = 5 * torch.randn(4, 3, dtype=torch.float64)
    x = torch.rand(4, 10, dtype=torch.float64)
    out = dec.net(z).detach().numpy()
    mean, sd = scipy.special.expit(out[:, :10]), np.exp(0.5 * out[:, 10:])
    p = dec(z)
    np.testing.assert_allclose(p.log_prob(x).detach().numpy(),
                               scipy.stats.norm.logpdf(x.numpy(), mean, sd).sum(-1), rtol=1e-10)
    assert ((p.mean > 0) & (p.mean < 1)).all()


def test_encoder_outputs_a_diagonal_gaussian_over_the_latent_axis():
    enc = GaussianEncoder(10, [8], 3)
    q = enc(torch.rand(6, 10))
    assert q.batch_shape == (6,) and q.event_shape == (3,)


@pytest.mark.parametrize("k", [1, 10, 1000])
def test_log_mean_exp_matches_scipy(k):
    a = torch.randn(k, 4, dtype=torch.float64) * 50
    expected = scipy.special.logsumexp(a.numpy(), axis=0) - math.log(k)
    np.testing.assert_allclose(log_mean_exp(a, 0).numpy(), expected, rtol=1e-12)
