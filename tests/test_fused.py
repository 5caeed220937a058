"""aevb.fused's hand-written backward pass against autograd through objectives.elbo_b (float64)."""
import copy
import json

import pytest
import torch

import aevb
from aevb import fused
from aevb.model import VAE, ModelConfig, initialize
from aevb.objectives import elbo_b
from aevb.trainer import make_optimizer


def model64(hidden, latent_dim=5, likelihood="bernoulli", std=0.05):
    model = VAE(ModelConfig((28, 28), latent_dim, hidden, likelihood))
    initialize(model, std, torch.Generator().manual_seed(0))
    return model.double()


@pytest.mark.parametrize("hidden, samples", [((500,), 1), ((30, 20), 3)])
def test_bound_and_gradients_equal_autograd(hidden, samples):
    model = model64(hidden)
    step = fused.FusedStep(model)
    gen = torch.Generator().manual_seed(1)
    for n in (7, 4, 7):  # a smaller last minibatch, then back: buffers follow the shape
        x = (torch.rand(n, 784, dtype=torch.float64, generator=gen) < 0.4).double()
        eps = torch.randn(samples, n, 5, dtype=torch.float64, generator=gen)
        reference = elbo_b(model, x, eps)
        expected = torch.autograd.grad(-reference.mean(), list(model.parameters()))
        bound = step(x, eps)
        torch.testing.assert_close(bound, reference.detach(), rtol=1e-12, atol=1e-10)
        for p, g in zip(model.parameters(), expected):
            torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-13)


def test_adagrad_training_follows_the_autograd_trajectory():
    """300 Adagrad steps from the same start with the same noise stay together in float64
    (float32 rounding alone would separate them by about 1e-4 by then)."""
    cfg = aevb.resolve("mnist-paper")
    a = model64((50,), latent_dim=4, std=0.01)
    b = copy.deepcopy(a)
    opt_a, opt_b = make_optimizer(cfg, a, 1000), make_optimizer(cfg, b, 1000)
    step = fused.FusedStep(b)
    gen = torch.Generator().manual_seed(2)
    probs = torch.rand(1000, 784, dtype=torch.float64, generator=gen) ** 3
    for i in range(300):
        x = torch.bernoulli(probs[i % 10 * 100:][:100], generator=gen)
        eps = torch.randn(1, 100, 4, dtype=torch.float64, generator=gen)
        opt_a.zero_grad(set_to_none=True)
        (-elbo_b(a, x, eps).mean()).backward()
        opt_a.step()
        step(x, eps)
        opt_b.step()
    start = model64((50,), latent_dim=4, std=0.01)
    for p, q, p0 in zip(a.parameters(), b.parameters(), start.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-9)
    assert max((p - p0).abs().max() for p, p0 in zip(a.parameters(), start.parameters())) > 0.05


def test_only_models_it_knows():
    assert fused.supports(model64((20,)))
    assert not fused.supports(model64((20,), likelihood="gaussian"))
    with pytest.raises(ValueError, match="Bernoulli decoder"):
        fused.FusedStep(model64((20,), likelihood="gaussian"))


def test_the_trainer_can_turn_it_off_and_old_runs_resume_without_it(tmp_path):
    from aevb.trainer import saved_config

    finals = {}
    for flag in (True, False):
        cfg = aevb.resolve(dataset="digits", latent_dim=2, hidden=(16,), samples=3000,
                           eval_points=1, fused=flag, out=str(tmp_path / str(flag)),
                           download=False)
        run = aevb.train(cfg, progress=False)
        info = json.loads((run / "config.json").read_text())
        assert info["config"]["fused"] is flag
        finals[flag] = aevb.checkpoint.read_metrics(run)[-1]["test_elbo"]
        assert saved_config(info) == cfg.__class__.from_dict(
            {**info["config"], "hidden": tuple(info["config"]["hidden"])})
    # Both train, to bounds that differ only as float32 rounding leads them apart.
    assert finals[True] != finals[False] and abs(finals[True] - finals[False]) < 2.0
    # A run from before the field existed continues on the autograd path it started on.
    del info["config"]["fused"]
    assert saved_config(info).fused is False
    del info["config"]["kernels"]  # and before aevb.kernels, on PyTorch operations
    assert saved_config(info).kernels is False
