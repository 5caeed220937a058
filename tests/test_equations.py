"""Each numbered equation the guide cites, against an independent computation.

The linear-Gaussian model (tests/linear_gaussian.py) has closed forms for log p(x), the exact
posterior and the bound, computed there in numpy float64; aevb's functions are estimated by
float64 Monte Carlo and must agree within five standard errors.
"""
import itertools
import math

import numpy as np
import pytest
import torch
from linear_gaussian import LinearGaussian

from aevb.maths.distributions import kl_to_standard_normal
from aevb.maths.objectives import elbo_a, elbo_b, minibatch_estimate

S = 20000  # Monte Carlo samples per data point


@pytest.fixture(scope="module")
def setup():
    model = LinearGaussian(scale=1.7)
    torch.manual_seed(0)
    x = model.decode(torch.randn(8, 2, dtype=torch.float64)).sample()
    eps = torch.randn(S, len(x), 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, x, eps


def _single_sample_estimates(estimator, model, x, eps):
    """[S, N]: the L = 1 estimator under each noise draw, in one batched call."""
    with torch.no_grad():
        out = estimator(model, x.repeat(len(eps), 1), eps.reshape(1, -1, eps.shape[-1]))
    return out.reshape(len(eps), len(x)).numpy()


def _assert_mc(samples, truth):
    mean, stderr = samples.mean(0), samples.std(0) / math.sqrt(len(samples))
    assert np.all(np.abs(mean - truth) < 5 * stderr + 1e-12), (mean - truth, stderr)


def test_eq1_log_likelihood_is_kl_to_posterior_plus_bound(setup):
    """log p(x) = KL(q(z|x) || p(z|x)) + L(theta, phi; x)."""
    model, x, eps = setup
    # In closed form, to rounding:
    np.testing.assert_allclose(model.kl_to_posterior(x) + model.exact_elbo(x),
                               model.exact_log_px(x), rtol=1e-10)
    # And with aevb's bound (estimator B) in place of the closed-form one:
    estimates = _single_sample_estimates(elbo_b, model, x, eps)
    _assert_mc(estimates + model.kl_to_posterior(x), model.exact_log_px(x))
    assert np.all(model.kl_to_posterior(x) > 0)  # so the bound lies below log p(x)


def test_eq2_and_eq6_estimator_a_is_unbiased_for_the_bound(setup):
    """L = E_q[-log q(z|x) + log p(x, z)]; estimator A averages that integrand (eq. 6)."""
    model, x, eps = setup
    _assert_mc(_single_sample_estimates(elbo_a, model, x, eps), model.exact_elbo(x))


def test_eq3_eq7_and_eq10_estimator_b_is_unbiased_for_the_bound(setup):
    """L = -KL(q(z|x) || p(z)) + E_q[log p(x|z)]; estimator B samples only the second term."""
    model, x, eps = setup
    _assert_mc(_single_sample_estimates(elbo_b, model, x, eps), model.exact_elbo(x))


def test_eq7_with_l_samples_is_the_average_of_l_single_sample_estimates(setup):
    model, x, eps = setup
    with torch.no_grad():
        joint = elbo_b(model, x, eps[:5]).numpy()
    singles = np.stack([_single_sample_estimates(elbo_b, model, x, eps[i:i + 1])[0]
                        for i in range(5)])
    np.testing.assert_allclose(joint, singles.mean(0), rtol=1e-12)


def test_appendix_b_kl_for_the_models_own_q(setup):
    model, x, _ = setup
    mu, var = model.q_params(x)
    expected = 0.5 * (mu**2 + var - 1 - np.log(var)).sum(-1)
    np.testing.assert_allclose(kl_to_standard_normal(model.encode(x)).detach().numpy(),
                               expected, rtol=1e-12)


def test_eq8_minibatch_estimate_is_unbiased_over_all_minibatches():
    """Averaged over every minibatch of M of the N points, (N/M) sum L~ is the full sum."""
    values = torch.tensor([-3.0, -1.5, -7.25, -0.5, -2.0, -4.0], dtype=torch.float64)
    n, m = len(values), 2
    batches = [minibatch_estimate(values[list(c)], n) for c in itertools.combinations(range(n), m)]
    assert float(torch.stack(batches).mean()) == pytest.approx(float(values.sum()), rel=1e-12)
    assert float(minibatch_estimate(values, n)) == pytest.approx(float(values.sum()), rel=1e-12)
