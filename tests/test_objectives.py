"""SGVB estimators A (eq. 6) and B (eq. 7/10) against a float64 reference and each other."""
import math

import numpy as np
import pytest
import scipy.special
import torch

import aevb
from aevb.maths.objectives import elbo_a, elbo_b, iwae_bound


@pytest.fixture(scope="module")
def trained(digits_run):
    model = aevb.load(digits_run).double()
    from aevb.data import load_dataset

    x = torch.bernoulli(load_dataset("digits").test[:50].double(),
                        generator=torch.Generator().manual_seed(0))
    return model, x


def numpy_elbo_b(model, x, eps):
    """Eq. 10 written out in numpy from the raw weights, for one hidden layer."""
    w = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    x, eps = x.numpy(), eps.numpy()
    h = np.tanh(x @ w["encoder.net.0.weight"].T + w["encoder.net.0.bias"])
    out = h @ w["encoder.net.2.weight"].T + w["encoder.net.2.bias"]
    j = eps.shape[-1]
    mu, log_var = out[:, :j], out[:, j:]
    neg_kl = 0.5 * (1 + log_var - mu**2 - np.exp(log_var)).sum(-1)
    z = mu + np.exp(0.5 * log_var) * eps  # [L, N, J]
    hd = np.tanh(z @ w["decoder.net.0.weight"].T + w["decoder.net.0.bias"])
    y = scipy.special.expit(hd @ w["decoder.net.2.weight"].T + w["decoder.net.2.bias"])
    log_px_z = (x * np.log(y) + (1 - x) * np.log1p(-y)).sum(-1)
    return neg_kl + log_px_z.mean(0)


def test_estimator_b_matches_numpy_reference(trained):
    model, x = trained
    eps = torch.randn(3, len(x), model.config.latent_dim, dtype=torch.float64)
    with torch.no_grad():
        ours = elbo_b(model, x, eps).numpy()
    np.testing.assert_allclose(ours, numpy_elbo_b(model, x, eps), rtol=1e-9)


def test_estimators_a_and_b_agree_in_expectation(trained):
    model, x = trained
    eps = torch.randn(2000, len(x), model.config.latent_dim, dtype=torch.float64,
                      generator=torch.Generator().manual_seed(1))
    # Row s holds the L = 1 estimates under noise eps_s: x repeated S times in one batch.
    x_rep = x.repeat(len(eps), 1)  # [S * N, D]
    eps_rep = eps.reshape(1, -1, eps.shape[-1])  # [1, S * N, J]
    with torch.no_grad():
        a = elbo_a(model, x_rep, eps_rep).reshape(len(eps), len(x))
        b = elbo_b(model, x_rep, eps_rep).reshape(len(eps), len(x))
    diff = (a - b).mean(0)
    stderr = (a - b).std(0) / math.sqrt(len(a))
    assert torch.all(diff.abs() < 5 * stderr + 1e-9)


def _gradient_samples(model, x, estimator, eps):
    grads = []
    for e in eps:
        model.zero_grad()
        estimator(model, x, e[None]).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    model.zero_grad()
    return torch.stack(grads)  # [S, P]


def test_estimator_b_gradient_has_lower_variance(trained):
    """What SGVB needs is a low-variance gradient; B's analytic KL removes part of the noise.

    (The value of the bound is another matter: on a well-fitted model, where q is close to the
    posterior, A's log-weights are nearly constant and its value can vary less than B's.)
    """
    model, x = trained
    eps = torch.randn(100, len(x), model.config.latent_dim, dtype=torch.float64,
                      generator=torch.Generator().manual_seed(2))
    var_a = _gradient_samples(model, x, elbo_a, eps).var(0).sum()
    var_b = _gradient_samples(model, x, elbo_b, eps).var(0).sum()
    assert var_b < 0.75 * var_a


def test_mean_over_l_equals_average_of_single_sample_estimates(trained):
    model, x = trained
    eps = torch.randn(4, len(x), model.config.latent_dim, dtype=torch.float64)
    with torch.no_grad():
        for estimator in (elbo_a, elbo_b):
            joint = estimator(model, x, eps)
            single = torch.stack([estimator(model, x, e[None]) for e in eps]).mean(0)
            torch.testing.assert_close(joint, single)


def test_importance_sampling_with_one_sample_is_estimator_a(trained):
    model, x = trained
    eps = torch.randn(1, len(x), model.config.latent_dim, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(iwae_bound(model, x, eps),
                                   elbo_a(model, x, eps))


def test_objectives_are_differentiable_for_the_reparameterization_gradient(trained):
    model, x = trained
    eps = torch.randn(1, len(x), model.config.latent_dim, dtype=torch.float64)
    model.zero_grad()
    elbo_b(model, x, eps).mean().backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    model.zero_grad()


def test_the_models_the_objectives_take_satisfy_the_declared_protocol(trained):
    """`maths.protocol.LatentVariableModel` (encode, decode, prior, config.latent_dim) is what
    the objectives ask of a model: the VAE, the linear-Gaussian test model and full VB's
    model under one theta have it; an object with only an encoder does not."""
    from linear_gaussian import LinearGaussian

    from aevb.full_vb import UnderTheta
    from aevb.maths.protocol import LatentVariableModel

    model, _ = trained
    theta = {name: p.detach() for name, p in model.decoder.named_parameters()}
    for m in (model, LinearGaussian(0.5), UnderTheta(model, theta)):
        assert isinstance(m, LatentVariableModel), type(m).__name__

    class EncoderOnly:
        config = model.config

        def encode(self, x):
            return model.encode(x)

    assert not isinstance(EncoderOnly(), LatentVariableModel)
