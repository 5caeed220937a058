"""Objectives and networks beyond the paper: the IWAE bound, a KL weight and its warm-up,
MLPs of any depth and activation, convolutional networks."""
import json
import math

import numpy as np
import pytest
import torch
from linear_gaussian import LinearGaussian

import aevb
from aevb.maths.objectives import elbo_a, elbo_b, elbo_beta, iwae_bound, warmup_beta
from aevb.model import VAE, ModelConfig, initialize


def _mnist_like(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 784, generator=g) < 0.3).float(), g


def test_iwae_with_one_sample_is_estimator_a():
    model = VAE(ModelConfig((28, 28), 6, (40, 30)))
    initialize(model, 0.1, torch.Generator().manual_seed(1))
    x, g = _mnist_like()
    eps = torch.randn(1, 12, 6, generator=g)
    assert torch.equal(iwae_bound(model, x, eps), elbo_a(model, x, eps))


def test_iwae_rises_with_k_to_the_exact_log_likelihood():
    """On the linear-Gaussian model, whose log p(x) is exact (scipy), the IWAE bound averaged
    over 200 points rises with k (k = 1, 3, 10: gaps of nats to tenths of a nat, far above
    the Monte Carlo noise of ~0.01) and lies within 0.05 nats of log p(x) at k = 5000."""
    model = LinearGaussian(scale=3.0)  # q three times as wide as the posterior
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        p = model.decode(torch.randn(200, 2, generator=g, dtype=torch.float64)).base_dist
        x = p.loc + p.scale * torch.randn(p.loc.shape, generator=g, dtype=torch.float64)
        exact = float(np.mean(model.exact_log_px(x)))
        gaps = [exact - float(iwae_bound(model, x, torch.randn(k, 200, 2, generator=g,
                                                                dtype=torch.float64)).mean())
                for k in (1, 3, 10, 5000)]
    assert gaps[0] > gaps[1] > gaps[2] > 0.1, gaps
    assert abs(gaps[3]) < 0.05, gaps


def test_beta_one_is_estimator_b_and_the_warmup_ends_at_beta():
    model = VAE(ModelConfig((28, 28), 5, (30,)))
    initialize(model, 0.1, torch.Generator().manual_seed(3))
    x, g = _mnist_like()
    eps = torch.randn(2, 12, 5, generator=g)
    assert torch.equal(elbo_beta(model, x, eps, 1.0), elbo_b(model, x, eps))
    kl = elbo_beta(model, x, eps, 0.0) - elbo_b(model, x, eps)  # the KL term itself
    torch.testing.assert_close(elbo_beta(model, x, eps, torch.tensor(0.25)),
                               elbo_b(model, x, eps) + 0.75 * kl)
    assert [warmup_beta(s, 1000) for s in (0, 250, 999, 1000, 5000)] == \
        [0.0, 0.25, 0.999, 1.0, 1.0]
    assert warmup_beta(500, 1000, beta=4.0) == 2.0 and warmup_beta(7, 0, beta=4.0) == 4.0


@pytest.mark.parametrize("shape, likelihood", [((28, 20), "bernoulli"),
                                               ((3, 64, 64), "gaussian")])
def test_convolutional_networks_give_the_right_shapes(shape, likelihood):
    model = VAE(ModelConfig(shape, 8, (64,), likelihood, "conv", "relu"))
    d = math.prod(shape)
    x = torch.rand(5, *shape)
    q = model.encode(x)
    assert q.batch_shape == (5,) and q.event_shape == (8,)
    p = model.decode(torch.randn(3, 5, 8))
    assert p.batch_shape == (3, 5) and p.event_shape == (d,) and p.mean.shape == (3, 5, d)
    if likelihood == "bernoulli":
        x = (x < 0.5).float()
    bound = elbo_b(model, x.reshape(5, d), torch.randn(2, 5, 8))
    assert bound.shape == (5,) and torch.isfinite(bound).all()
    assert model.sample(4).shape == (4, *shape)
    # convolutions share their weights across the image: far fewer than a dense first layer
    assert sum(p.numel() for p in model.encoder.conv.parameters()) < d * 64


def test_deeper_mlps_with_another_activation_train(tmp_path):
    cfg = aevb.resolve(dataset="digits", latent_dim=2, hidden=(32, 16), activation="relu",
                       samples=4000, eval_points=2, out=str(tmp_path / "run"), download=False,
                       kl_warmup=2000, estimator="B")
    run = aevb.train(cfg, progress=False)
    model = aevb.load(run)
    assert [m.out_features for m in model.encoder.net if hasattr(m, "out_features")] == [32, 16, 4]
    assert isinstance(model.encoder.net[1], torch.nn.ReLU)
    first, last = aevb.rundir.logs.read_metrics(run)[0], aevb.rundir.logs.read_metrics(run)[-1]
    assert last["test_elbo"] > first["test_elbo"] + 5


def test_a_convolutional_model_trains_end_to_end(tmp_path):
    cfg = aevb.resolve(dataset="digits", latent_dim=2, network="conv", activation="relu",
                       hidden=(32,), samples=3000, eval_points=2, out=str(tmp_path / "run"),
                       download=False, optimizer="adam", lr=1e-3)
    run = aevb.train(cfg, progress=False)
    model = aevb.load(run)
    assert model.config.network == "conv" \
        and isinstance(model.encoder, aevb.networks.conv.ConvEncoder)
    metrics = aevb.rundir.logs.read_metrics(run)
    assert metrics[-1]["test_elbo"] > metrics[0]["test_elbo"]
    assert (run / "report.html").is_file()


def test_iwae_training_records_its_bound(tmp_path):
    cfg = aevb.resolve(dataset="digits", latent_dim=2, hidden=(16,), samples=2000,
                       eval_points=1, estimator="iwae", mc_samples=5, optimizer="adam",
                       lr=1e-3, out=str(tmp_path / "run"), download=False)
    run = aevb.train(cfg, progress=False)
    info = aevb.rundir.checkpoint.read_config(run)
    assert info["config"]["estimator"] == "iwae" and info["engine"]["name"] != "native"


def test_settings_that_do_not_fit_are_refused():
    with pytest.raises(aevb.AevbError, match="kl-weight and kl-warmup apply to estimator B"):
        aevb.resolve(estimator="iwae", kl_warmup=10)
    with pytest.raises(aevb.AevbError, match="network must be mlp or conv"):
        aevb.resolve(network="resnet")
    with pytest.raises(aevb.AevbError, match="images of at least 4 x 4"):
        ModelConfig((100,), 2, (8,), "bernoulli", "conv")


def test_active_units_are_counted_on_a_model_built_to_use_three_of_five():
    """An encoder whose mean copies x_0, x_1 and 0.05 x_2 into z_0..z_2 and is 0 elsewhere:
    with x uniform on [0, 1], Var(x) = 1/12, so the activities are 1/12, 1/12, 0.0025/12, 0, 0:
    two units above 0.01. Its KL per dimension has the closed form 0.5 (E[mu^2] + var - 1 -
    log var) with var = 0.25 in every dimension."""
    from aevb.evaluation.latents import latent_use

    model = VAE(ModelConfig((3,), 5, (4,), "gaussian"))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        first, last = model.encoder.net[0], model.encoder.net[-1]
        first.weight[:3, :3] = torch.diag(torch.tensor([1.0, 1.0, 0.05])) * 0.01
        last.weight[:3, :3] = torch.eye(3) * 100.0  # tanh(0.01 a) * 100 ~ a for |a| <= 1
        last.bias[5:] = math.log(0.25)  # log-variances
    x = torch.rand(20000, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    model = model.double()
    use = latent_use(model, x)
    assert use.active_units == 2
    np.testing.assert_allclose(use.activity[:2], [1 / 12] * 2, rtol=0.03)
    assert use.activity[2] < 0.01 and use.activity[3:] == [0.0, 0.0]
    mean_square = [1 / 3, 1 / 3, 0.0025 / 3, 0, 0]  # E[x^2] = 1/3 for x ~ U(0, 1)
    expected = [0.5 * (m + 0.25 - 1 - math.log(0.25)) for m in mean_square]
    np.testing.assert_allclose(use.kl_per_dimension, expected, rtol=0.02, atol=1e-4)


def _colour_folder(folder, n=40, size=(10, 12), seed=0):
    """n colour PNGs: a red, green or blue square on black, at random places."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i in range(n):
        img = np.zeros((*size, 3), np.uint8)
        top, left = rng.integers(0, size[0] - 4), rng.integers(0, size[1] - 4)
        img[top:top + 4, left:left + 4, i % 3] = 255
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    return folder


@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_a_colour_image_folder_round_trips(tmp_path, network):
    """Colour images keep their channels through loading, training, sampling and pictures."""
    from PIL import Image

    folder = _colour_folder(tmp_path / "images")
    data = aevb.data.load_dataset(str(folder), download=False)
    assert data.shape == (3, 10, 12) and data.train.shape[1] == 360
    cfg = aevb.resolve(dataset=str(folder), latent_dim=2, hidden=(16,), samples=600,
                       eval_points=1, network=network, activation="relu", batch_size=10,
                       out=str(tmp_path / f"run-{network}"), download=False)
    run = aevb.train(cfg, progress=False)
    model = aevb.load(run)
    assert model.config.data_shape == (3, 10, 12)
    assert model.sample(5, torch.Generator().manual_seed(0)).shape == (5, 3, 10, 12)
    for name in ("samples.png", "reconstructions.png"):
        picture = Image.open(run / name)
        assert picture.mode == "RGB", name
    # a reconstruction's top row is the data itself, in its colours: red, green and blue tiles
    top = np.asarray(Image.open(run / "reconstructions.png"))
    assert (top[..., 0] > 200).any() and (top[..., 1] > 200).any() and (top[..., 2] > 200).any()


def test_grey_folders_stay_one_channel_and_colour_arrays_are_channels_first(tmp_path):
    from PIL import Image

    folder = tmp_path / "grey"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.full((6, 7, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    assert aevb.data.read_image_folder(folder).shape == (5, 6, 7)
    last = np.random.default_rng(0).random((4, 6, 7, 3)).astype(np.float32)
    np.save(tmp_path / "hwc.npy", last)
    x = aevb.data.load_user_data(str(tmp_path / "hwc.npy"))
    assert x.shape == (4, 126)
    np.testing.assert_array_equal(x.numpy(), last.transpose(0, 3, 1, 2).reshape(4, -1))


def test_the_iwae_learning_rate_schedule():
    """Burda et al.'s schedule: 3^i epochs at 0.001 * 10^(-i/7), i = 0..7 (3,280 epochs)."""
    from aevb.training.build import learning_rate

    cfg = aevb.resolve(lr=1e-3, lr_schedule="iwae")
    n = 1000
    starts = np.cumsum([0] + [3**i for i in range(8)])  # first epoch of each stage
    for i, start in enumerate(starts[:8]):
        for epoch in (start, start + 3**i - 0.001):
            assert math.isclose(learning_rate(cfg, round(epoch * n), n, 10**9),
                                1e-3 * 10 ** (-i / 7))
    assert starts[8] == 3280
    assert math.isclose(learning_rate(cfg, 10**9, n, 10**9), 1e-4)  # the last stage holds
    assert learning_rate(aevb.resolve(lr=0.02), 10**9, n, 10**9) == 0.02


def test_the_cosine_schedule_anneals_to_zero_over_the_run():
    """lr (1 + cos(pi t / T)) / 2: lr at the start, lr / 2 halfway, lr (2 + sqrt 2) / 4 at a
    quarter, 0 at the end, whatever the run's length."""
    from aevb.training.build import learning_rate

    cfg = aevb.resolve(lr=2e-3, lr_schedule="cosine")
    for total in (1000, 7_200_000):
        assert learning_rate(cfg, 0, 60000, total) == 2e-3
        assert math.isclose(learning_rate(cfg, total // 2, 60000, total), 1e-3)
        assert math.isclose(learning_rate(cfg, total // 4, 60000, total),
                            2e-3 * (2 + math.sqrt(2)) / 4)
        assert learning_rate(cfg, total, 60000, total) == 0.0


def test_a_scheduled_run_sets_the_optimizers_step_size(tmp_path):
    cfg = aevb.resolve(dataset="digits", latent_dim=2, hidden=(16,), epochs=5, eval_points=1,
                       optimizer="adam", lr=1e-3, lr_schedule="iwae",
                       out=str(tmp_path / "run"), download=False)
    run = aevb.train(cfg, progress=False)
    state = aevb.rundir.checkpoint.read_config(run)["config"]
    assert state["lr_schedule"] == "iwae"
    # its last step falls in stage 2 (epochs 4 to 12): the step size the checkpoint holds
    from safetensors import safe_open

    with safe_open(str(run / "state.safetensors"), "pt") as f:
        groups = json.loads(f.metadata()["param_groups"])
    assert math.isclose(groups[0]["lr"], 1e-3 * 10 ** (-2 / 7))


def test_presets_beyond_the_paper_hold_their_papers_settings():
    from aevb.training.build import learning_rate

    iwae = aevb.resolve("iwae-paper", mc_samples=5)
    assert (iwae.hidden, iwae.latent_dim, iwae.batch_size, iwae.estimator) == \
        ((200, 200), 50, 20, "iwae")
    # Burda et al.'s schedule: 1 + 3 + ... + 3^7 = 3,280 epochs, the last at 1e-3 * 10^-1.
    assert learning_rate(iwae, 3279 * 60000, 60000, 3280 * 60000) == pytest.approx(1e-4)
    assert learning_rate(iwae, 3 * 60000, 60000, 3280 * 60000) == \
        pytest.approx(1e-3 * 10 ** (-1 / 7))
    best = aevb.resolve("mnist-best")
    assert (best.hidden, best.latent_dim, best.estimator, best.mc_samples, best.lr_schedule,
            best.epochs, best.samples) == ((200, 200), 50, "iwae", 5, "cosine", 850.0, None)
    # A length on the command line replaces the preset's, whichever unit it is given in.
    assert (aevb.resolve("mnist-best", samples=1000).samples,
            aevb.resolve("mnist-best", samples=1000).epochs) == (1000, None)
    assert aevb.resolve("mnist-best", epochs=3.0).epochs == 3.0
    m1, m2 = aevb.resolve("m1-paper"), aevb.resolve("m2-paper", features="runs/m1")
    assert (m1.hidden, m1.latent_dim, m1.activation, m1.lr) == ((600, 600), 50, "softplus", 3e-4)
    assert (m2.conditional, m2.classifier, m2.labels, m2.hidden, m2.latent_dim,
            m2.classifier_weight) == (True, (500,), 100, (500,), 50, 0.1)
    # Kingma et al.'s code for 100 labels: layers of 300, draws of M1's active units
    m1m2 = aevb.resolve("m1m2-paper", features="runs/m1")
    assert (m1m2.hidden, m1m2.classifier, m1m2.feature_draws, m1m2.active_features,
            m1m2.labels) == ((300,), (300,), True, True, 100)
    with pytest.raises(aevb.AevbError, match="need --features RUN"):
        aevb.resolve("m1m2-paper")
    conv = aevb.resolve("conv-images", dataset="photos/")
    model = VAE(ModelConfig((3, 64, 64), conv.latent_dim, conv.hidden, "gaussian",
                            conv.network, conv.activation))
    assert model.decode(torch.zeros(2, 32)).mean.shape == (2, 3 * 64 * 64)
