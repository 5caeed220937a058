"""Importance-sampled log-likelihood against a closed form, and its behaviour in K."""
import math

import numpy as np
import pytest
import torch
from linear_gaussian import LinearGaussian

import aevb
from aevb.data import load_dataset
from aevb.evaluation.evaluate import (average_bound, evaluation_set, importance_log_likelihood,
                                      per_example_bound)
from aevb.maths.objectives import iwae_bound as one_shot


def test_importance_sampling_matches_the_exact_log_likelihood():
    model = LinearGaussian(scale=1.5)
    x = model.decode(torch.randn(40, 2, dtype=torch.float64)).sample()
    k = 5000
    estimate = importance_log_likelihood(model, x, k, seed=1).numpy()
    # With a proposal c times wider than the exact posterior in J dimensions, the weights'
    # relative variance is (c^2 / sqrt(2 c^2 - 1))^J - 1 = 0.446 here, so the estimate's
    # standard error is about sqrt(0.446 / K) = 0.0094 nats: 0.05 is over five of them.
    assert np.max(np.abs(estimate - model.exact_log_px(x))) < 0.05
    assert abs(np.mean(estimate - model.exact_log_px(x))) < 0.01


def test_exact_posterior_gives_the_exact_value_with_one_sample():
    model = LinearGaussian(scale=1.0)
    x = model.decode(torch.randn(10, 2, dtype=torch.float64)).sample()
    np.testing.assert_allclose(importance_log_likelihood(model, x, 1, seed=0).numpy(),
                               model.exact_log_px(x), rtol=1e-10)


def test_chunked_equals_one_shot():
    model = LinearGaussian(scale=2.0)
    x = model.decode(torch.randn(30, 2, dtype=torch.float64)).sample()
    chunked = importance_log_likelihood(model, x, 100, seed=3, batch_size=30, k_chunk=7)
    eps = torch.randn(100, 30, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(chunked, one_shot(model, x, eps), rtol=1e-12, atol=1e-10)


@pytest.fixture(scope="module")
def digits_test(digits_run):
    model = aevb.load(digits_run)
    x = evaluation_set(load_dataset("digits").test, "test", 0, True)
    return model, x


def test_estimate_is_above_the_bound_and_rises_with_k(digits_test):
    model, x = digits_test
    bound = average_bound(model, x, seed=0)
    estimates = [float(importance_log_likelihood(model, x, k, seed=0).mean())
                 for k in (1, 20, 500)]
    assert abs(estimates[0] - bound) < 1.0  # K = 1 is an unbiased estimate of the bound
    assert estimates[0] < estimates[1] < estimates[2]
    assert estimates[2] > bound


def test_two_evaluations_agree_exactly(digits_run):
    from aevb.rundir.evaluations import evaluate_run

    a = evaluate_run(digits_run, importance_samples=50)
    b = evaluate_run(digits_run, importance_samples=50)
    assert a.summary()["log_likelihood"] == b.summary()["log_likelihood"]
    assert np.array_equal(a.per_example, b.per_example) and len(a.per_example) == a.n
    # The bound is the one training wrote last for the test set: same data, same noise.
    assert a.elbo == aevb.rundir.logs.read_metrics(digits_run)[-1]["test_elbo"]


def test_per_example_bound_is_per_example(digits_test):
    model, x = digits_test
    full = per_example_bound(model, x, seed=4)
    assert full.shape == (len(x),)
    assert math.isclose(float(full.double().mean()), average_bound(model, x, seed=4))
