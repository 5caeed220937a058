"""The networks of appendix C: MLPs (tanh, as in the paper, or another activation) as bodies
whose last layer outputs the parameters of a distribution, read by a head
(`aevb.networks.heads`). Convolutional bodies, for images, are in `aevb.networks.conv`.

Each network's forward returns a torch.distributions object with the data or latent axis as
the event, so callers ask it for log_prob, mean or samples and never unpack raw tuples.
Changing the likelihood p_theta(x|z) means passing another head, nothing else.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.distributions import Distribution

from .heads import LIKELIHOODS, POSTERIOR, Head, posterior

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


class MLPNetwork(nn.Module):
    """A body and a head (`aevb.networks.heads`): the MLP `net` from `fan_in` values through
    `hidden` to head.per_value numbers for each of `out` values, read by `head` as a
    distribution with event [out]. `net` holds every parameter; the head (`distribution`)
    has none."""

    def __init__(self, fan_in: int, hidden: Sequence[int], out: int, head: Head,
                 activation: str = "tanh"):
        super().__init__()
        self.net = mlp([fan_in, *hidden, head.per_value * out], activation)
        self.distribution = head

    def forward(self, v: torch.Tensor) -> Distribution:
        return self.distribution.after_linear(self.net[:-1](v), self.net[-1])


class GaussianEncoder(MLPNetwork):
    """q_phi(z|x) = N(mu(x), diag(sigma^2(x))), mean and log-variance from one MLP (C.2)."""

    def __init__(self, data_dim: int, hidden: Sequence[int], latent_dim: int,
                 activation: str = "tanh"):
        super().__init__(data_dim, hidden, latent_dim, POSTERIOR, activation)


class BernoulliDecoder(MLPNetwork):
    """p_theta(x|z) = prod_d Bernoulli(y_d), y = sigmoid(W2 tanh(W1 z + b1) + b2) (C.1)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], data_dim: int,
                 activation: str = "tanh"):
        super().__init__(latent_dim, hidden, data_dim, LIKELIHOODS["bernoulli"], activation)


class GaussianDecoder(MLPNetwork):
    """p_theta(x|z) = N(mu(z), diag(sigma^2(z))) for real-valued data in [0, 1] (C.2): the
    mean squashed by a sigmoid, the log-variance a second block of the last layer."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], data_dim: int,
                 activation: str = "tanh"):
        super().__init__(latent_dim, hidden, data_dim, LIKELIHOODS["gaussian"], activation)


class MLP:
    """The network family "mlp" (`--network mlp`): the paper's MLPs of appendix C, of any depth
    and activation, on the D = prod(data_shape) values of a data point."""

    needs_hidden = True  # at least one hidden layer
    takes_flat_data = True  # data of any shape, as its D values
    runs_in_browser = True  # the explorer page computes these networks itself
    takes_labels = True  # a label's one-hot vector beside x and z (aevb.labelled)

    def check(self, data_shape) -> str | None:
        return None

    def build(self, c) -> tuple[nn.Module, nn.Module]:
        """(encoder, decoder) for ModelConfig c; a model of c.classes > 0 classes takes the
        label's one-hot vector beside x and beside z (`aevb.labelled`)."""
        y = getattr(c, "classes", 0)
        context = c.hidden[-1] if c.hidden else c.data_dim + y  # the features before the head
        return (MLPNetwork(c.data_dim + y, c.hidden, c.latent_dim, posterior(c, context),
                           c.activation),
                MLPNetwork(c.latent_dim + y, tuple(reversed(c.hidden)), c.data_dim,
                           LIKELIHOODS[c.likelihood], c.activation))

    def widest(self, c) -> int:
        """The most values one sample of one data point holds in a layer (for chunk sizes
        and memory estimates)."""
        return max(c.data_dim, *c.hidden, 2 * c.latent_dim)
