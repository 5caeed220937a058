"""The VampPrior (aevb.priors.vamp): p(z) = (1/K) sum_k q_phi(z | u_k) over learned
pseudo-inputs, checked against closed forms and scipy, trained, evaluated and resumed."""

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from cli_helpers import killed_run_resumes_bitwise, trained_and_evaluated

import aevb
from aevb.maths.distributions import standard_normal
from aevb.model import VAE, ModelConfig, initialize


def _model(components, latent=4, seed=0):
    model = VAE(ModelConfig(data_shape=(30,), latent_dim=latent, hidden=(16,), prior="vamp",
                            prior_components=components)).double()
    initialize(model, 0.3, torch.Generator().manual_seed(seed))
    return model


def test_one_pseudo_input_with_a_standard_normal_posterior_is_the_standard_normal_prior():
    model = _model(1)
    with torch.no_grad():  # q_phi(z|x) = N(0, I) for every x: mu = 0, log sigma^2 = 0
        model.encoder.net[-1].weight.zero_()
        model.encoder.net[-1].bias.zero_()
    z = torch.randn(6, 5, 4, dtype=torch.float64)
    want = standard_normal(4, dtype=torch.float64).log_prob(z)
    assert torch.equal(model.prior().log_prob(z), want)


def test_the_log_density_is_the_mean_of_the_posteriors_at_the_pseudo_inputs():
    model = _model(7)
    u = np.clip(model.p_z.pseudo_inputs.detach().numpy(), 0, 1)  # hardtanh(w; 0, 1)
    q = model.encode(torch.from_numpy(u))
    mu, sigma = q.base_dist.loc.detach().numpy(), q.base_dist.scale.detach().numpy()  # [K, J]
    z = np.random.default_rng(1).normal(size=(9, 4))
    parts = np.stack([scipy.stats.norm(mu[k], sigma[k]).logpdf(z).sum(-1) for k in range(7)])
    want = scipy.special.logsumexp(parts, axis=0) - np.log(7)
    got = model.prior().log_prob(torch.from_numpy(z)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # pseudo-inputs start inside (0, 1), where hardtanh passes gradients to every pixel
    assert (model.p_z.pseudo_inputs > 0).all() and (model.p_z.pseudo_inputs < 1).all()


def test_draws_come_from_the_mixture():
    model = _model(3, latent=2)
    with torch.no_grad():  # three far-apart, narrow components at the pseudo-inputs
        model.encoder.net[-1].weight.zero_()
        model.encoder.net[-1].bias.copy_(torch.tensor([0.0, 0.0, -8.0, -8.0]))
        model.p_z.pseudo_inputs.zero_()
        z = model.p_z.sample(20_000, torch.Generator().manual_seed(0))
    # all pseudo-inputs equal: one component N(0, e^-8 I), whatever k is drawn
    np.testing.assert_allclose(z.std(0).numpy(), np.exp(-4.0), rtol=0.03)
    assert abs(float(z.mean())) < 5 * np.exp(-4.0) / np.sqrt(20_000)


SETTINGS = ["--dataset", "digits", "--latent-dim", "4", "--hidden", "64", "--epochs", "20",
            "--prior", "vamp", "--prior-components", "20", "--lr", "0.05", "--eval-points", "6",
            "--checkpoint-every", "1000", "--quiet"]


def test_pictures_of_samples_decode_draws_of_the_models_own_prior():
    from aevb.outputs import plots

    model = _model(3, latent=2).float()
    with torch.no_grad():  # every q(z|u_k) = N((4, -3), e^-8 I): so is the prior
        model.encoder.net[-1].weight.zero_()
        model.encoder.net[-1].bias.copy_(torch.tensor([4.0, -3.0, -8.0, -8.0]))
    z = plots.prior_draws(model, 5000, seed=1)
    np.testing.assert_allclose(z.mean(0).numpy(), [4.0, -3.0], atol=5 * np.exp(-4.0))
    np.testing.assert_allclose(z.std(0).numpy(), np.exp(-4.0), rtol=0.05)
    assert torch.equal(z, plots.prior_draws(model, 5000, seed=1))  # reproducible by seed


def test_a_vamp_prior_trains_evaluates_and_resumes_bitwise(tmp_path):
    from PIL import Image

    reference, out = tmp_path / "ref", tmp_path / "run"
    model, result = trained_and_evaluated(SETTINGS, reference)
    assert model.p_z.pseudo_inputs.shape == (20, 64)
    assert result.kl_per_dimension is None and result.active_units is not None
    # the report shows the 20 pseudo-inputs (a 5 x 4 grid of 8 x 8 images) and the two clouds
    grid = np.asarray(Image.open(reference / "pseudo-inputs.png"))
    assert grid.shape == ((4 * 9 + 1) * 7, (5 * 9 + 1) * 7)  # 8 x 8 tiles, 1 pad, scale 7
    u = np.clip(model.p_z.pseudo_inputs.detach().numpy(), 0, 1)  # hardtanh(w; 0, 1)
    for k in (0, 19):  # tile k at row k // 5, column k % 5
        top, left = 7 * (1 + 9 * (k // 5)), 7 * (1 + 9 * (k % 5))
        tile = grid[top:top + 56:7, left:left + 56:7]
        np.testing.assert_array_equal(tile, (u[k].reshape(8, 8) * 255).round())
    assert (reference / "aggregate-posterior.png").stat().st_size > 10_000
    assert "pseudo-inputs.png" in (reference / "report.html").read_text()

    killed_run_resumes_bitwise(SETTINGS, reference, out)


def test_prior_components_are_checked():
    with pytest.raises(aevb.AevbError, match="prior-components must be between 0 and 2"):
        aevb.resolve(prior="vamp", prior_components=-1)
