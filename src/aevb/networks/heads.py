"""Heads: what turns a network body's output into a distribution.

A network here is a body (an MLP, convolutions; it holds every parameter) whose last layer
outputs `per_value` numbers for each of the D values of the variable it models, and a head,
free of parameters, that reads those numbers as a distribution with event [D]:

    q_phi(z|x)   = POSTERIOR(encoder_body(x))              diagonal Gaussian, [N] x [J]
    p_theta(x|z) = LIKELIHOODS[name](decoder_body(z))     Bernoulli or Gaussian, [...] x [D]

A new likelihood is one new head class and one line in LIKELIHOODS: `--likelihood NAME` and
ModelConfig.likelihood then take it, and both network families build bodies for it. A new
posterior is a head too, with one line in POSTERIORS (`--posterior`; the inverse
autoregressive flow of `flows.py` is one, with parameters of its own). The
parameters come first in blocks of D (all means, then all log-variances), which is the order
of the bodies' last layers and of checkpoints.
"""
from __future__ import annotations

import importlib

import torch
from torch import nn
from torch.distributions import Distribution

from ..maths.distributions import (AffineBernoulli, BernoulliLogits, DiagonalGaussian,
                                   diagonal_gaussian)


class Head:
    """out [..., per_value * D] -> a distribution with batch [...] and event [D]."""

    name = ""
    per_value = 1
    binary = False  # whether the data must be 0 or 1 (and so log p(x) <= 0)
    exports_parameters = True  # whether its parameters alone (export, explorer) describe it

    @classmethod
    def build(cls, c, context: int) -> "Head":
        """The head for ModelConfig c on a body with `context` features before its last
        layer; a head without parameters is the same for every model."""
        return cls()

    def __call__(self, out: torch.Tensor) -> Distribution:
        raise NotImplementedError

    def after_linear(self, h: torch.Tensor, layer: nn.Linear) -> Distribution:
        """The distribution of a body whose last layer is `layer` and whose features before it
        are h [..., H]. The same as self(layer(h)); a head may keep the factors instead."""
        return self(layer(h))

    def __repr__(self):
        return f"{type(self).__name__}()"


class Gaussian(Head):
    """N(mu, diag(exp(log_var))) from out = (mu, log_var): the paper's q_phi(z|x) (C.2)."""

    name = "gaussian"
    per_value = 2

    def __call__(self, out: torch.Tensor) -> DiagonalGaussian:
        mu, log_var = out.chunk(2, dim=-1)  # [..., J] each
        return diagonal_gaussian(mu, log_var)


class Bernoulli(Head):
    """prod_d Bernoulli(x_d; sigmoid(l_d)) from logits out = l, for binary data (C.1);
    log_prob(x) = sum_d x_d log y_d + (1 - x_d) log(1 - y_d) in nats, y = sigmoid(l)."""

    name = "bernoulli"
    binary = True

    def __call__(self, out: torch.Tensor) -> BernoulliLogits:
        return BernoulliLogits(out)

    def after_linear(self, h: torch.Tensor, layer: nn.Linear) -> AffineBernoulli:
        # The last layer's inputs and weights rather than the logits: log_prob then uses the
        # stable softplus form, and a fast one for many z per x.
        return AffineBernoulli(h, layer.weight, layer.bias)


class SigmoidGaussian(Head):
    """prod_d N(x_d; sigmoid(m_d), exp(v_d)) from out = (m, v), for real-valued data in
    [0, 1]: the mean squashed into (0, 1), a learned log-variance per value (C.2, Frey Face)."""

    name = "gaussian"
    per_value = 2

    def __call__(self, out: torch.Tensor) -> DiagonalGaussian:
        mean_logit, log_var = out.chunk(2, dim=-1)  # [..., D] each
        return DiagonalGaussian(torch.sigmoid(mean_logit), torch.exp(0.5 * log_var))


class Normal(Head):
    """prod_d N(x_d; m_d, exp(v_d)) from out = (m, v), for real-valued data of any range (M1's
    latent features in M1 + M2): the mean unbounded, a learned log-variance per value."""

    name = "normal"
    per_value = 2

    def __call__(self, out: torch.Tensor) -> DiagonalGaussian:
        mean, log_var = out.chunk(2, dim=-1)  # [..., D] each
        return diagonal_gaussian(mean, log_var)


POSTERIOR = Gaussian()  # the paper's q_phi(z|x)
LIKELIHOODS: dict[str, Head] = {"bernoulli": Bernoulli(), "gaussian": SigmoidGaussian(),
                                "normal": Normal()}
# --posterior NAME -> "module:class" of this package (a flow is a head with parameters)
POSTERIORS = {"gaussian": "heads:Gaussian", "iaf": "flows:IAF"}


def posterior_class(name: str) -> type:
    module, cls = POSTERIORS[name].split(":")
    return getattr(importlib.import_module(f".{module}", __package__), cls)


def posterior(c, context: int) -> Head:
    """q_phi(z|x)'s head for ModelConfig c (c.posterior) on `context` body features."""
    return posterior_class(c.posterior).build(c, context)
