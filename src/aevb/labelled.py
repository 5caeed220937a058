"""Labels as variables of the model (Kingma, Rezende, Mohamed & Welling 2014, section 3):

    conditional VAE   q_phi(z|x, y),  p_theta(x|y, z),  p(z)          y observed
    M2                the same, with p(y) = Cat(1/C) and a classifier q_phi(y|x) = Cat(pi(x))

y is one of C classes, fed to the networks as a one-hot vector beside x (encoder) or z
(decoder). A model with `ModelConfig.classes` C > 0 is such a model: `model.given(y)` is the
model with y observed, a latent-variable model of x (`maths.protocol`) that every objective,
estimator and sampler takes as it takes an unconditional VAE; `model.classify(x)` is
q_phi(y|x) where the model has a classifier (`ModelConfig.classifier_hidden`). The objectives
that sum y out are in `maths.semi_supervised`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Categorical

from .networks.mlp import mlp


def one_hot(y: torch.Tensor, classes: int, dtype=torch.float32) -> torch.Tensor:
    """int64 labels [N] -> one-hot rows [N, C]."""
    return torch.nn.functional.one_hot(y, classes).to(dtype)


class Given:
    """The model with its label observed: x -> q_phi(z|x, y), z -> p_theta(x|y, z), p(z).

    y [N] labels (or one-hot rows [N, C]) for the N data points the objectives will see; the
    decoder broadcasts them over leading sample axes of z ([L, N, J]). One label (a 0-d
    tensor, or one one-hot row [C]) serves any number of points."""

    def __init__(self, model, y: torch.Tensor):
        self.model, self.config, self.p_z = model, model.config, model.p_z
        device = next(model.parameters()).device
        self.y = y.to(device) if y.is_floating_point() else \
            one_hot(y.to(device), model.config.classes)  # [N, C] or [C]

    def encode(self, x: torch.Tensor):
        """q_phi(z|x, y): x [N, D] -> batch [N], event [J]."""
        x = x.reshape(x.shape[0], -1)
        y = self.y.to(x.dtype)
        if y.dim() == 1:  # one label for every point
            y = y.expand(x.shape[0], y.shape[-1])
        return self.model.encoder(torch.cat([x, y], -1))

    def decode(self, z: torch.Tensor):
        """p_theta(x|y, z): z [..., N, J] -> batch [..., N], event [D]."""
        y = self.y.to(z.dtype).expand(*z.shape[:-1], self.y.shape[-1])
        return self.model.decoder(torch.cat([z, y], -1))

    def prior(self):
        """p(z), independent of y."""
        return self.model.prior()

    def parameters(self):
        return self.model.parameters()


class EveryClass(Given):
    """The model given every class, for N points repeated once per class (class-major: the
    N points with class 0, then with class 1, ...; the layout of
    `semi_supervised.class_bounds`): batch [C N].

    The same densities as `Given` with those C N one-hot labels. Only the evaluation order
    differs: the encoder's first layer W [x; y] + b is W_x x + (the column c of W_y) + b, so
    W_x x, the largest product of a pixel model's encoder (D x H), is computed once per point
    and not once per point and class (docs/performance.md, "Decisions in the code")."""

    def __init__(self, model, n: int):
        c = model.config.classes
        device = next(model.parameters()).device
        eye = torch.eye(c, device=device)
        super().__init__(model, eye[:, None, :].expand(c, n, c).reshape(c * n, c))
        self.n = n
        net = getattr(model.encoder, "net", None)
        self._split = isinstance(net, nn.Sequential) and len(net) > 1 and \
            isinstance(net[0], nn.Linear)  # a hidden layer to add the label's column to

    def encode(self, x: torch.Tensor):
        """q_phi(z|x, c) for x [C N, D], the N points repeated class-major (the first N rows
        are read): batch [C N], event [J]."""
        if not self._split:
            return super().encode(x)
        net, c, n = self.model.encoder.net, self.config.classes, self.n
        x = x.reshape(x.shape[0], -1)[:n]  # [N, D]
        first = net[0]
        d = x.shape[1]
        from_x = torch.nn.functional.linear(x, first.weight[:, :d].to(x.dtype))  # [N, H]
        from_y = (first.weight[:, d:].T + first.bias).to(x.dtype)  # [C, H]
        h = (from_y[:, None, :] + from_x[None]).reshape(c * n, -1)  # [C N, H]
        return self.model.encoder.distribution.after_linear(net[1:-1](h), net[-1])


class Classifier(nn.Module):
    """q_phi(y|x) = Cat(softmax(MLP(x))): x [N, D] -> a Categorical with batch [N]."""

    def __init__(self, data_dim: int, hidden, classes: int, activation: str):
        super().__init__()
        self.net = mlp([data_dim, *hidden, classes], activation)

    def forward(self, x: torch.Tensor) -> Categorical:
        return Categorical(logits=self.net(x.reshape(x.shape[0], -1)), validate_args=False)
