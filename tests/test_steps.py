"""aevb.steps: one step per algorithm behind one call, refusing non-finite objectives."""
import pytest
import torch

import aevb
from aevb import baselines, steps
from aevb.model import VAE, ModelConfig, initialize
from aevb.trainer import make_optimizer

ALGORITHMS = [("aevb", True), ("aevb", False), ("wake-sleep", False), ("mcem", False)]


def _setup(algorithm, use_fused):
    cfg = aevb.resolve("mnist-paper", algorithm=algorithm, fused=use_fused, latent_dim=3,
                       hidden=(16,), mcem_updates=2)
    model = VAE(ModelConfig((28, 28), 3, (16,), "bernoulli"))
    initialize(model, 0.05, torch.Generator().manual_seed(0))
    optimizer = make_optimizer(cfg, model, 1000)
    chains = baselines.Chains.start(1000, 3, torch.Generator().manual_seed(2)) \
        if algorithm == "mcem" else None
    return model, steps.make_step(cfg, model, optimizer, chains)


@pytest.mark.parametrize("algorithm, use_fused", ALGORITHMS)
def test_a_step_moves_every_trained_parameter(algorithm, use_fused):
    model, step = _setup(algorithm, use_fused)
    x = (torch.rand(20, 784, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    before = [p.detach().clone() for p in model.parameters()]
    step(x, torch.arange(20), torch.Generator().manual_seed(3))
    moved = [not torch.equal(p, q) for p, q in zip(model.parameters(), before)]
    n_decoder = len(list(model.decoder.parameters()))
    assert all(moved[-n_decoder:])  # theta, by every algorithm
    assert all(moved[:-n_decoder]) == (algorithm != "mcem")  # phi: MCEM has no encoder to fit


@pytest.mark.parametrize("algorithm, use_fused", ALGORITHMS)
def test_a_non_finite_objective_moves_nothing(algorithm, use_fused):
    model, step = _setup(algorithm, use_fused)
    with torch.no_grad():
        model.decoder.net[-1].bias[7] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    x = (torch.rand(20, 784, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with pytest.raises(steps.NonFinite):
        step(x, torch.arange(20), torch.Generator().manual_seed(3))
    for p, q in zip(model.parameters(), before):
        torch.testing.assert_close(p, q, rtol=0, atol=0, equal_nan=True)
