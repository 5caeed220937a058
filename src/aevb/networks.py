"""The networks of appendix C: MLPs (tanh, as in the paper, or another activation) that output
the parameters of a distribution. Convolutional ones, for images, are in `aevb.conv`.

Each module's forward returns a torch.distributions object with the data or latent axis as the
event, so callers ask it for log_prob, mean or samples and never unpack raw tuples. Changing
the likelihood p_theta(x|z) means passing another decoder class, nothing else.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.distributions import Independent, Normal

from .distributions import AffineBernoulli, diagonal_gaussian


ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU,
                                           "softplus": nn.Softplus, "elu": nn.ELU}


def mlp(sizes: Sequence[int], activation: str = "tanh") -> nn.Sequential:
    """Linear layers between consecutive `sizes`, the activation after every layer but the
    last."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i > 0:
            layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


class GaussianEncoder(nn.Module):
    """q_phi(z|x) = N(mu(x), diag(sigma^2(x))), mean and log-variance from one MLP (C.2)."""

    def __init__(self, data_dim: int, hidden: Sequence[int], latent_dim: int,
                 activation: str = "tanh"):
        super().__init__()
        self.net = mlp([data_dim, *hidden, 2 * latent_dim], activation)

    def forward(self, x: torch.Tensor) -> Independent:
        mu, log_var = self.net(x).chunk(2, dim=-1)  # [N, J] each
        return diagonal_gaussian(mu, log_var)


class BernoulliDecoder(nn.Module):
    """p_theta(x|z) = prod_d Bernoulli(y_d), y = sigmoid(W2 tanh(W1 z + b1) + b2) (C.1).

    For binary data; log_prob(x) = sum_d x_d log y_d + (1 - x_d) log(1 - y_d) in nats.
    """

    def __init__(self, latent_dim: int, hidden: Sequence[int], data_dim: int,
                 activation: str = "tanh"):
        super().__init__()
        self.net = mlp([latent_dim, *hidden, data_dim], activation)

    def forward(self, z: torch.Tensor) -> AffineBernoulli:
        # The last layer's inputs and weights rather than y: log_prob then uses the stable
        # softplus form, and a fast one for many z per x.
        last = self.net[-1]
        return AffineBernoulli(self.net[:-1](z), last.weight, last.bias)


class GaussianDecoder(nn.Module):
    """p_theta(x|z) = N(mu(z), diag(sigma^2(z))) for real-valued data in [0, 1] (C.2).

    The mean is squashed into (0, 1) by a sigmoid; the log-variance is a second linear head on
    the same hidden layer, as in the paper's Frey Face model.
    """

    def __init__(self, latent_dim: int, hidden: Sequence[int], data_dim: int,
                 activation: str = "tanh"):
        super().__init__()
        self.net = mlp([latent_dim, *hidden, 2 * data_dim], activation)

    def forward(self, z: torch.Tensor) -> Independent:
        return sigmoid_gaussian(*self.net(z).chunk(2, dim=-1))


def sigmoid_gaussian(mean_logit: torch.Tensor, log_var: torch.Tensor) -> Independent:
    """prod_d N(x_d; sigmoid(m_d), exp(v_d)) for m, v [..., D]: batch [...], event [D]."""
    return Independent(
        Normal(torch.sigmoid(mean_logit), torch.exp(0.5 * log_var), validate_args=False), 1)


DECODERS: dict[str, type[nn.Module]] = {
    "bernoulli": BernoulliDecoder,
    "gaussian": GaussianDecoder,
}
