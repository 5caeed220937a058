"""The networks of appendix C: tanh MLPs that output the parameters of a distribution.

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


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers between consecutive `sizes`, tanh after every layer but the last."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i > 0:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


class GaussianEncoder(nn.Module):
    """q_phi(z|x) = N(mu(x), diag(sigma^2(x))), mean and log-variance from one tanh MLP (C.2)."""

    def __init__(self, data_dim: int, hidden: Sequence[int], latent_dim: int):
        super().__init__()
        self.net = mlp([data_dim, *hidden, 2 * latent_dim])

    def forward(self, x: torch.Tensor) -> Independent:
        mu, log_var = self.net(x).chunk(2, dim=-1)  # [N, J] each
        return diagonal_gaussian(mu, log_var)


class BernoulliDecoder(nn.Module):
    """p_theta(x|z) = prod_d Bernoulli(y_d), y = sigmoid(W2 tanh(W1 z + b1) + b2) (C.1).

    For binary data; log_prob(x) = sum_d x_d log y_d + (1 - x_d) log(1 - y_d) in nats.
    """

    def __init__(self, latent_dim: int, hidden: Sequence[int], data_dim: int):
        super().__init__()
        self.net = mlp([latent_dim, *hidden, data_dim])

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

    def __init__(self, latent_dim: int, hidden: Sequence[int], data_dim: int):
        super().__init__()
        self.net = mlp([latent_dim, *hidden, 2 * data_dim])

    def forward(self, z: torch.Tensor) -> Independent:
        mean_logit, log_var = self.net(z).chunk(2, dim=-1)  # [..., D] each
        return Independent(
            Normal(torch.sigmoid(mean_logit), torch.exp(0.5 * log_var), validate_args=False), 1
        )


DECODERS: dict[str, type[nn.Module]] = {
    "bernoulli": BernoulliDecoder,
    "gaussian": GaussianDecoder,
}
