"""HMC against a known Gaussian, and the appendix D estimator against the exact log p(x)."""
import numpy as np
import torch
from linear_gaussian import LinearGaussian

from aevb.evaluation.evaluate import hmc_harmonic_log_likelihood
from aevb.maths import hmc

MEAN = torch.tensor([1.0, -2.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.95], [0.95, 1.0]], dtype=torch.float64)  # strongly correlated


def _log_target(z):  # [C, 2] -> [C]
    return torch.distributions.MultivariateNormal(MEAN, COV).log_prob(z)


def test_hmc_leaves_a_correlated_gaussian_invariant():
    g = torch.Generator().manual_seed(0)
    # Start the 400 chains exactly in the target: invariance means they stay distributed so.
    z0 = torch.distributions.MultivariateNormal(MEAN, COV).sample((400,))
    out = hmc.sample(_log_target, z0, n_samples=25, n_leapfrog=4, burn_in=50, generator=g)
    draws = out.z.reshape(-1, 2).numpy()  # 10,000 draws
    # Standard errors, allowing for correlation between a chain's successive draws: the mean
    # of 400 independent chains has sd <= 1/sqrt(400) = 0.05 per coordinate.
    np.testing.assert_allclose(draws.mean(0), MEAN.numpy(), atol=0.1)
    np.testing.assert_allclose(np.cov(draws.T), COV.numpy(), atol=0.1)


def test_hmc_moves_from_a_bad_start_to_the_target():
    g = torch.Generator().manual_seed(1)
    z0 = torch.full((200, 2), 6.0, dtype=torch.float64)
    out = hmc.sample(_log_target, z0, n_samples=40, n_leapfrog=4, burn_in=200, generator=g)
    np.testing.assert_allclose(out.z.reshape(-1, 2).mean(0).numpy(), MEAN.numpy(), atol=0.15)


def test_step_size_adaptation_reaches_the_target_acceptance():
    g = torch.Generator().manual_seed(2)
    z0 = torch.distributions.MultivariateNormal(MEAN, COV).sample((100,))
    for target in (0.6, 0.9):
        out = hmc.sample(_log_target, z0, n_samples=100, n_leapfrog=4, burn_in=300,
                         step_size=1.0, target_accept=target, generator=g)
        assert abs(float(out.acceptance.mean()) - target) < 0.05, (target, out.acceptance.mean())
    assert float(out.step_size.mean()) < 1.0  # 1.0 was far too large for this target


def test_appendix_d_estimator_matches_the_exact_log_likelihood():
    model = LinearGaussian(scale=1.0)
    torch.manual_seed(0)
    x = model.decode(torch.randn(50, 2, dtype=torch.float64)).sample()
    estimate = hmc_harmonic_log_likelihood(model, x, n_samples=200, seed=0).numpy()
    exact = model.exact_log_px(x)
    # Measured here: largest per-point error 0.034 nats, mean error -0.002, with 200 draws.
    assert np.max(np.abs(estimate - exact)) < 0.1
    assert abs(np.mean(estimate - exact)) < 0.02
    # The paper's setting, 50 draws per point, is noisier but still unbiased on average.
    rough = hmc_harmonic_log_likelihood(model, x, n_samples=50, seed=1).numpy()
    assert abs(np.mean(rough - exact)) < 0.05  # measured 0.007; largest point error 0.17
