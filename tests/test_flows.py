"""Inverse autoregressive flow posteriors (aevb.networks.flows) against autograd and the
diagonal Gaussian they start from; trained, evaluated, resumed and refused where they cannot go."""

import numpy as np
import pytest
import scipy.stats
import torch
from cli_helpers import (cli, killed_run_resumes_bitwise, one_error_line,
                         refused_by_export_and_explorer, trained_and_evaluated)

from aevb.maths import objectives
from aevb.maths.distributions import q_sample
from aevb.model import VAE, ModelConfig, initialize
from aevb.networks.flows import MADE


def _model(steps=3, latent=4, network="mlp", shape=(12,), seed=0, std=0.3):
    model = VAE(ModelConfig(data_shape=shape, latent_dim=latent, hidden=(9,), posterior="iaf",
                            flow_steps=steps, network=network, activation="tanh")).double()
    initialize(model, std, torch.Generator().manual_seed(seed))
    return model


@pytest.mark.parametrize("reverse", [False, True])
def test_made_outputs_depend_only_on_earlier_coordinates(reverse):
    made = MADE(5, 3, 10, reverse).double()
    for p in made.parameters():
        torch.nn.init.normal_(p)
    z, h = torch.randn(5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: torch.cat(made(v, h)), z)  # [2J, J]
    order = np.arange(5)[::-1] if reverse else np.arange(5)
    allowed = order[None, :] < order[:, None]  # output j may see input i: i earlier than j
    assert np.all(jac[:5].numpy()[~allowed] == 0) and np.all(jac[5:].numpy()[~allowed] == 0)
    assert np.all(jac[:5].numpy()[allowed] != 0)  # and does see every earlier one


@pytest.mark.parametrize("network,shape", [("mlp", (12,)), ("conv", (8, 8))])
def test_log_q_is_the_base_density_less_the_jacobians_log_determinant(network, shape):
    model = _model(network=network, shape=shape)
    x = torch.rand(1, *shape, dtype=torch.float64)
    q = model.encode(x)
    eps = torch.randn(1, 1, 4, dtype=torch.float64)
    z0 = q.base.base_dist.loc + q.base.base_dist.scale * eps
    jac = torch.autograd.functional.jacobian(lambda v: q.flow(v)[0], z0)  # [1,1,J,1,1,J]
    _, log_det = torch.linalg.slogdet(jac.reshape(4, 4))
    base = scipy.stats.norm(q.base.base_dist.loc.detach().numpy(),
                            q.base.base_dist.scale.detach().numpy()).logpdf(
                                z0.detach().numpy()).sum()
    z = q_sample(q, eps)
    np.testing.assert_allclose(q.log_prob(z).item(), base - log_det.item(), rtol=1e-10)
    assert abs(log_det.item()) > 1e-3  # a flow that moves


def test_a_flow_with_zeroed_steps_is_the_diagonal_gaussian():
    model = _model()
    with torch.no_grad():
        for p in model.encoder.distribution.steps.parameters():
            p.zero_()
    x = torch.rand(6, 12, dtype=torch.float64)
    eps = torch.randn(5, 6, 4, dtype=torch.float64)
    q = model.encode(x)
    z = q_sample(q, eps)
    assert torch.equal(z, q.base.base_dist.loc + q.base.base_dist.scale * eps)
    assert torch.equal(q.log_prob(z), q.base.log_prob(z))


def test_its_density_is_known_at_its_own_draws_only():
    q = _model().encode(torch.rand(2, 12, dtype=torch.float64))
    with pytest.raises(ValueError, match="known at its own draws only"):
        q.log_prob(torch.zeros(1, 2, 4, dtype=torch.float64))


def test_importance_sampling_with_a_flow_rises_with_k_to_the_exact_log_likelihood():
    model = _model(latent=2, std=0.2)
    x = torch.bernoulli(torch.full((3, 12), 0.3, dtype=torch.float64))
    # the truth without the encoder: log p(x) = log of the integral of p(x|z) p(z) over a
    # grid of z in float64
    grid = torch.linspace(-7, 7, 561, dtype=torch.float64)
    z = torch.cartesian_prod(grid, grid)  # [G, 2]
    with torch.no_grad():
        log_joint = model.decode(z[:, None, :]).log_prob(x) + model.prior().log_prob(z)[:, None]
        exact = (torch.logsumexp(log_joint, 0) + 2 * torch.log(grid[1] - grid[0])).mean()
        g = torch.Generator().manual_seed(0)

        def bound(k, repeats):  # the k-sample bound's expectation, from `repeats` draws
            eps = torch.randn(repeats, k, 3, 2, generator=g, dtype=torch.float64)
            return torch.stack([objectives.iwae_bound(model, x, e) for e in eps]).mean()

        elbo, iwae10, many = bound(1, 2000), bound(10, 500), bound(20000, 1)
    assert elbo < iwae10 < exact  # the bounds rise with k toward log p(x) ...
    assert abs(many - exact) < 0.02  # ... and importance sampling reaches it


SETTINGS = ["--dataset", "digits", "--latent-dim", "4", "--hidden", "64", "--epochs", "20",
            "--posterior", "iaf", "--flow-steps", "2", "--lr", "0.05", "--eval-points", "6",
            "--checkpoint-every", "1000", "--quiet"]


def test_an_iaf_model_trains_evaluates_resumes_bitwise_and_is_refused_where_it_cannot_go(
        tmp_path):
    reference, out = tmp_path / "ref", tmp_path / "run"
    model, result = trained_and_evaluated(SETTINGS, reference)
    assert len(model.encoder.distribution.steps) == 2
    assert result.kl_per_dimension is None and 0 <= result.active_units <= 4

    killed_run_resumes_bitwise(SETTINGS, reference, out)

    export, explore = refused_by_export_and_explorer(reference, tmp_path)
    assert "the iaf posterior is a flow" in export and "posterior is iaf" in explore


def test_a_vamp_prior_with_a_flow_posterior_is_refused_in_one_line():
    r = cli("train", "--dataset", "digits", "--prior", "vamp", "--posterior", "iaf",
            "--samples", "100")
    assert "VampPrior" in one_error_line(r)
