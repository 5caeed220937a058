"""The networks of appendix C: MLPs (tanh, as in the paper, or another activation) that output
the parameters of a distribution. Convolutional ones, for images, are in `aevb.networks.conv`.

Each module's forward returns a torch.distributions object with the data or latent axis as the
event, so callers ask it for log_prob, mean or samples and never unpack raw tuples. Changing
the likelihood p_theta(x|z) means passing another decoder class, nothing else.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..maths.distributions import AffineBernoulli, DiagonalGaussian, diagonal_gaussian

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

    def forward(self, x: torch.Tensor) -> DiagonalGaussian:
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

    def forward(self, z: torch.Tensor) -> DiagonalGaussian:
        return sigmoid_gaussian(*self.net(z).chunk(2, dim=-1))


def sigmoid_gaussian(mean_logit: torch.Tensor, log_var: torch.Tensor) -> DiagonalGaussian:
    """prod_d N(x_d; sigmoid(m_d), exp(v_d)) for m, v [..., D]: batch [...], event [D]."""
    return DiagonalGaussian(torch.sigmoid(mean_logit), torch.exp(0.5 * log_var))


DECODERS: dict[str, type[nn.Module]] = {
    "bernoulli": BernoulliDecoder,
    "gaussian": GaussianDecoder,
}


class MLP:
    """The network family "mlp" (`--network mlp`): the paper's MLPs of appendix C, of any depth
    and activation, on the D = prod(data_shape) values of a data point."""

    needs_hidden = True  # at least one hidden layer
    takes_flat_data = True  # data of any shape, as its D values
    runs_in_browser = True  # the explorer page computes these networks itself

    def check(self, data_shape) -> str | None:
        return None

    def build(self, c) -> tuple[nn.Module, nn.Module]:
        """(encoder, decoder) for ModelConfig c."""
        return (GaussianEncoder(c.data_dim, c.hidden, c.latent_dim, c.activation),
                DECODERS[c.likelihood](c.latent_dim, tuple(reversed(c.hidden)), c.data_dim,
                                       c.activation))

    def widest(self, c) -> int:
        """The most values one sample of one data point holds in a layer (for chunk sizes
        and memory estimates)."""
        return max(c.data_dim, *c.hidden, 2 * c.latent_dim)
