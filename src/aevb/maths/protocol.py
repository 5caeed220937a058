"""What the objectives ask of a model: the declared protocol of a latent-variable model.

`aevb.VAE` satisfies it, and so do the test suite's linear-Gaussian model with a
closed-form likelihood and full VB's `UnderTheta` (the VAE under one draw of theta); the
objectives use nothing else of the model they are given.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch.distributions import Distribution


class LatentConfig(Protocol):
    latent_dim: int  # J


@runtime_checkable
class LatentVariableModel(Protocol):
    """p_theta(x, z) = p(z) p_theta(x|z) with a recognition model q_phi(z|x)."""

    config: LatentConfig

    def encode(self, x: torch.Tensor) -> Distribution:
        """q_phi(z|x) for x [N, D]: batch [N], event [J]."""

    def decode(self, z: torch.Tensor) -> Distribution:
        """p_theta(x|z) for z [..., J]: batch [...], event [D]."""

    def prior(self) -> Distribution:
        """p(z): event [J]."""
