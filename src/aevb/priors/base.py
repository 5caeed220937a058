"""What every prior p(z) module provides."""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution


class Prior(nn.Module):
    """p(z) over J = latent_dim dimensions. Subclasses implement `forward` (the distribution,
    event [J], on the module's device) and `sample`; a prior with learnable parameters
    registers them as usual and they train with the decoder's (they belong to theta)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        # Zero-size and not saved: gives a parameter-free prior its device and dtype.
        self.register_buffer("anchor", torch.zeros(0), persistent=False)

    @classmethod
    def build(cls, latent_dim: int, *, encoder: nn.Module | None = None, data_shape=None,
              components: int = 0) -> "Prior":
        """The prior of a model with this encoder q_phi(z|x) and data of `data_shape`;
        `components`: how many parts a mixture prior has (0: the prior's own default).
        A prior that needs none of these takes only the latent dimension."""
        return cls(latent_dim)

    def reset(self, generator: torch.Generator | None = None) -> None:
        """Set the prior's own starting values, after `model.initialize` drew every parameter
        from N(0, init_std^2); by default those stay."""

    def forward(self) -> Distribution:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws z ~ p(z), [n, J], from `generator`."""
        raise NotImplementedError
