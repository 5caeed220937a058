"""aevb.algorithms: one step per algorithm behind one call, refusing non-finite objectives."""
import dataclasses

import pytest
import torch

import aevb
from aevb import algorithms
from aevb.algorithms.base import NonFinite
from aevb.algorithms.mcem import Chains
from aevb.model import VAE, ModelConfig, initialize
from aevb.training.build import make_optimizer

ALGORITHMS = [("aevb", "native"), ("aevb", "eager"), ("aevb", "compiled"), ("wake-sleep", "eager"),
              ("mcem", "eager")]


def _setup(algorithm, engine):
    if engine == "native" and aevb.native.unavailable_reason(
            VAE(ModelConfig((28, 28), 3, (16,))), "adagrad", torch.device("cpu")):
        pytest.skip("aevb.native unavailable here")
    cfg = aevb.resolve("mnist-paper", algorithm=algorithm, engine=engine, latent_dim=3,
                       hidden=(16,), mcem_updates=2)
    model = VAE(ModelConfig((28, 28), 3, (16,), "bernoulli"))
    initialize(model, 0.05, torch.Generator().manual_seed(0))
    optimizer = make_optimizer(cfg, model, 1000, native_step=engine == "native")
    chains = Chains.start(1000, 3, torch.Generator().manual_seed(2)) \
        if algorithm == "mcem" else None
    # (20 points a minibatch below: the compiled step serves minibatches of that size)
    return model, algorithms.get(algorithm).make_step(
        dataclasses.replace(cfg, batch_size=20), model, optimizer, chains, engine)


@pytest.mark.parametrize("algorithm, engine", ALGORITHMS)
def test_a_step_moves_every_trained_parameter(algorithm, engine):
    model, step = _setup(algorithm, engine)
    x = (torch.rand(20, 784, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    before = [p.detach().clone() for p in model.parameters()]
    step(x, torch.arange(20), torch.Generator().manual_seed(3))
    moved = [not torch.equal(p, q) for p, q in zip(model.parameters(), before)]
    n_decoder = len(list(model.decoder.parameters()))
    assert all(moved[-n_decoder:])  # theta, by every algorithm
    assert all(moved[:-n_decoder]) == (algorithm != "mcem")  # phi: MCEM has no encoder to fit


@pytest.mark.parametrize("algorithm, engine", ALGORITHMS)
def test_a_non_finite_objective_moves_nothing(algorithm, engine):
    model, step = _setup(algorithm, engine)
    with torch.no_grad():
        model.decoder.net[-1].bias[7] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    x = (torch.rand(20, 784, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with pytest.raises(NonFinite):
        step(x, torch.arange(20), torch.Generator().manual_seed(3))
    for p, q in zip(model.parameters(), before):
        torch.testing.assert_close(p, q, rtol=0, atol=0, equal_nan=True)
