"""Convolutional bodies for images of any height and width, grey or colour.

The same heads as `aevb.networks.mlp` (`aevb.networks.heads`: q_phi(z|x) a diagonal Gaussian;
p_theta(x|z) Bernoulli or a Gaussian with sigmoid mean), with convolutions in place of the
first and last dense layers: weights shared across the image instead of one per pixel pair.

    encoder  x [N, C, H, W] -conv 4x4/2-> [N, 32, H/2, W/2] -conv 4x4/2-> [N, 64, H/4, W/4]
             -flatten-> MLP through `hidden` -> (mu, log sigma^2) [N, 2J] -> head
    decoder  z [..., J] -MLP through reversed(hidden)-> [.., 64, ceil(H/4), ceil(W/4)]
             -deconv 4x4/2-> 32 channels -deconv 4x4/2-> k C maps, cropped to H x W -> head

with k = head.per_value (1 for Bernoulli, 2 for the Gaussian).

Data of shape (H, W) has one channel; (C, H, W) has C. The distributions' event is the
flattened image (D = C H W values), as for the MLPs, so objectives and evaluation do not
know which networks they run.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.distributions import Distribution

from .heads import LIKELIHOODS, POSTERIOR, Head, posterior
from .mlp import ACTIVATIONS, mlp

CHANNELS = (32, 64)  # of the two stride-2 convolutions


def image_dims(data_shape: Sequence[int]) -> tuple[int, int, int]:
    """(C, H, W) of data points of `data_shape`, (H, W) or (C, H, W)."""
    if len(data_shape) == 2:
        return 1, int(data_shape[0]), int(data_shape[1])
    if len(data_shape) == 3:
        return tuple(int(s) for s in data_shape)
    raise ValueError(f"convolutional networks need images, (H, W) or (C, H, W); got "
                     f"data of shape {tuple(data_shape)}")


class ConvEncoder(nn.Module):
    """q_phi(z|x) = N(mu(x), diag(sigma^2(x))) from two strided convolutions and an MLP."""

    def __init__(self, data_shape: Sequence[int], hidden: Sequence[int], latent_dim: int,
                 activation: str = "relu", head: Head = POSTERIOR):
        super().__init__()
        self.dims = c, _, _ = image_dims(data_shape)
        act = ACTIVATIONS[activation]
        self.conv = nn.Sequential(nn.Conv2d(c, CHANNELS[0], 4, 2, 1), act(),
                                  nn.Conv2d(CHANNELS[0], CHANNELS[1], 4, 2, 1), act())
        # The dense layers (named `head` before the heads of aevb.networks.heads existed; the
        # name stays so that checkpoints keep their keys).
        self.head = mlp([conv_features(data_shape), *hidden, head.per_value * latent_dim],
                        activation)
        self.distribution = head

    def forward(self, x: torch.Tensor) -> Distribution:
        h = self.conv(x.reshape(-1, *self.dims)).flatten(1)  # [N, 64 H/4 W/4]
        # the dense layers to the last one's input, then the head: [N, 2J] and its features
        return self.distribution.after_linear(self.head[:-1](h), self.head[-1])


def conv_features(data_shape: Sequence[int]) -> int:
    """The values the two convolutions give for one image of `data_shape`."""
    _, h, w = image_dims(data_shape)
    return CHANNELS[1] * _after_two(h) * _after_two(w)


def _after_two(size: int) -> int:
    """A side's length after two 4x4 convolutions of stride 2 and padding 1."""
    return (size // 2) // 2


class _Deconv(nn.Module):
    """z [..., J] -> maps [..., out_channels, H, W] (the decoders' shared trunk)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], data_shape: Sequence[int],
                 out_per_channel: int, activation: str):
        super().__init__()
        self.dims = c, h, w = image_dims(data_shape)
        act = ACTIVATIONS[activation]
        self.start = (CHANNELS[1], math.ceil(h / 4), math.ceil(w / 4))
        self.dense = mlp([latent_dim, *hidden, math.prod(self.start)], activation)
        self.deconv = nn.Sequential(
            act(), nn.ConvTranspose2d(CHANNELS[1], CHANNELS[0], 4, 2, 1), act(),
            nn.ConvTranspose2d(CHANNELS[0], out_per_channel * c, 4, 2, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        maps = self.deconv(self.dense(z).reshape(-1, *self.start))  # [B, k C, 4 ceil(H/4), ..]
        _, h, w = self.dims
        return maps[..., :h, :w].reshape(*batch, maps.shape[1], h * w)  # [..., k C, H W]


class ConvDecoder(nn.Module):
    """p_theta(x|z) = head(maps(z)): the head's k numbers per value from transposed
    convolutions, k maps per channel; event [D = C H W]."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], data_shape: Sequence[int],
                 head: Head, activation: str = "relu"):
        super().__init__()
        self.trunk = _Deconv(latent_dim, hidden, data_shape, head.per_value, activation)
        self.distribution = head

    def forward(self, z: torch.Tensor) -> Distribution:
        # [..., k C, H W] -> [..., k D]: all first parameters, then all second ones
        return self.distribution(self.trunk(z).flatten(-2))


class Conv:
    """The network family "conv" (`--network conv`): two strided convolutions each side of
    the dense layers `hidden`, for images (H, W) or (C, H, W) of at least 4 x 4 pixels."""

    needs_hidden = False  # the convolutions alone may do
    takes_flat_data = False  # images only
    runs_in_browser = False  # the explorer page bundles no convolutions
    takes_labels = False  # conditioning on a label is built for the MLPs only

    def check(self, data_shape) -> str | None:
        if len(data_shape) in (2, 3) and min(data_shape[-2:]) >= 4:
            return None
        return ("convolutional networks need images of at least 4 x 4 pixels, "
                f"got data of shape {tuple(data_shape)}")

    def build(self, c) -> tuple[nn.Module, nn.Module]:
        context = c.hidden[-1] if c.hidden else conv_features(c.data_shape)
        return (ConvEncoder(c.data_shape, c.hidden, c.latent_dim, c.activation,
                            posterior(c, context)),
                ConvDecoder(c.latent_dim, tuple(reversed(c.hidden)), c.data_shape,
                            LIKELIHOODS[c.likelihood], c.activation))

    def widest(self, c) -> int:
        return 8 * c.data_dim + max(c.hidden, default=0)  # 32 maps of H/2 x W/2 per H x W
