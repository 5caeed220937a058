"""Two stochastic layers (aevb.hierarchy): reduced to one layer, against the IWAE bound, against
a float64 quadrature of log p(x), and through the commands."""

import torch
from cli_helpers import (cli, killed_run_resumes_bitwise, one_error_line,
                         refused_by_export_and_explorer, trained_and_evaluated)

from aevb.evaluation.importance import importance_log_likelihood
from aevb.maths import objectives
from aevb.model import VAE, ModelConfig, initialize


def _two_layer(j1=3, j2=2, std=0.3, seed=0):
    model = VAE(ModelConfig(data_shape=(12,), latent_dim=j1 + j2, hidden=(9,),
                            top_latent_dim=j2, top_hidden=(7,))).double()
    initialize(model, std, torch.Generator().manual_seed(seed))
    return model


def _x(n=4):
    return torch.bernoulli(torch.full((n, 12), 0.3, dtype=torch.float64),
                           generator=torch.Generator().manual_seed(1))


def test_with_the_top_layer_cut_off_it_is_the_one_layer_model():
    two = _two_layer()
    one = VAE(ModelConfig(data_shape=(12,), latent_dim=3, hidden=(9,))).double()
    with torch.no_grad():
        one.encoder.load_state_dict(two.encoder.bottom.state_dict())
        one.decoder.load_state_dict(two.decoder.decoder.state_dict())
        # p(z1|z2) = N(0, I) and q(z2|z1) = N(0, I): z2 carries nothing
        for net in (two.p_z.lower.net, two.encoder.upper.net):
            net[-1].weight.zero_()
            net[-1].bias.zero_()
    x = _x()
    # the same z1 noise for both
    eps = torch.randn(500, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    got = importance_log_likelihood(two, x, 500, seed=0, noise=eps)
    want = importance_log_likelihood(one, x, 500, seed=0, noise=eps[..., :3].contiguous())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_pictures_of_samples_decode_z1_drawn_from_p_z1_given_z2():
    from aevb.outputs import plots

    model = _two_layer().float()
    with torch.no_grad():  # p(z1|z2) = N((2, -1, 5), e^-6 I) whatever z2 is
        model.p_z.lower.net[-1].weight.zero_()
        model.p_z.lower.net[-1].bias.copy_(torch.tensor([2.0, -1.0, 5.0, -6, -6, -6]))
    z = plots.prior_draws(model, 4000, seed=0)  # [4000, 5]: z1, then z2 ~ N(0, I)
    torch.testing.assert_close(z[:, :3].mean(0), torch.tensor([2.0, -1.0, 5.0]), atol=0.01,
                               rtol=0)
    torch.testing.assert_close(z[:, 3:].std(0), torch.ones(2), atol=0.05, rtol=0)


def test_active_units_are_counted_per_layer():
    from aevb.evaluation.latents import latent_use

    model = _two_layer(j1=3, j2=2).float()
    x = _x(200).float()
    with torch.no_grad():  # q(z2|z1) = N(b, e^-10 I) ignores z1: no unit of z2 moves with x
        model.encoder.upper.net[-1].weight.zero_()
        model.encoder.upper.net[-1].bias[2:] = -10.0
    use = latent_use(model, x)
    activity = torch.tensor(use.activity)
    assert use.layer_sizes == (3, 2) and use.active_per_layer[1] == 0
    assert use.active_per_layer[0] == int((activity[:3] > 0.01).sum())
    assert activity[3:].max() < 1e-3 and activity[:3].max() > 0.01


def test_the_iwae_bound_with_one_sample_is_estimator_a():
    model, x = _two_layer(), _x()
    eps = torch.randn(1, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(objectives.iwae_bound(model, x, eps),
                               objectives.elbo_a(model, x, eps), rtol=1e-12, atol=1e-12)


def test_importance_sampling_rises_with_k_to_a_float64_quadrature():
    model, x = _two_layer(j1=1, j2=1, std=0.2), _x(3)
    grid = torch.linspace(-8, 8, 801, dtype=torch.float64)
    z = torch.cartesian_prod(grid, grid)  # [G, 2]: (z1, z2)
    with torch.no_grad():
        log_joint = model.decode(z[:, None, :]).log_prob(x) + model.prior().log_prob(z)[:, None]
        exact = torch.logsumexp(log_joint, 0) + 2 * torch.log(grid[1] - grid[0])  # [3]
        g = torch.Generator().manual_seed(0)

        def bound(k, repeats):
            eps = torch.randn(repeats, k, 3, 2, generator=g, dtype=torch.float64)
            return torch.stack([objectives.iwae_bound(model, x, e) for e in eps]).mean(0)

        elbo, iwae10, many = bound(1, 2000), bound(10, 500), bound(50000, 1)
    assert (elbo < iwae10).all() and (iwae10 < exact).all()
    torch.testing.assert_close(many, exact, rtol=0, atol=0.02)


SETTINGS = ["--dataset", "digits", "--latent-dim", "6", "--top-latent-dim", "2",
            "--hidden", "64", "--top-hidden", "32", "--epochs", "20", "--lr", "0.05",
            "--eval-points", "6", "--checkpoint-every", "1000", "--quiet"]


def test_two_layers_train_evaluate_resume_bitwise_and_are_refused_where_they_cannot_go(
        tmp_path):
    reference, out = tmp_path / "ref", tmp_path / "run"
    model, result = trained_and_evaluated(SETTINGS, reference)
    assert model.config.top_latent_dim == 2 and model.p_z.lower.net[-1].out_features == 8
    assert result.kl_per_dimension is None and 0 <= result.active_units <= 6
    assert result.layer_sizes == [4, 2] and sum(result.active_units_per_layer) == \
        result.active_units
    printed = cli("evaluate", reference, "--importance-samples", "10").stdout
    z1, z2 = result.active_units_per_layer
    assert f"(z1: {z1} of 4, z2: {z2} of 2)" in printed

    killed_run_resumes_bitwise(SETTINGS, reference, out)

    export, explore = refused_by_export_and_explorer(reference, tmp_path)
    assert "two stochastic layers" in export and "has two" in explore


def test_layer_settings_that_do_not_fit_are_refused_in_one_line():
    r = cli("train", "--dataset", "digits", "--latent-dim", "4", "--top-latent-dim", "4")
    assert "top-latent-dim must be at least 0 and below latent-dim 4" in one_error_line(r)
    r = cli("train", "--dataset", "digits", "--top-latent-dim", "2", "--posterior", "iaf",
            "--samples", "100")
    assert "two stochastic layers take the gaussian posterior" in one_error_line(r)
