"""p(z) = N(0, I), the paper's prior (section 3)."""
from __future__ import annotations

import torch

from ..maths.distributions import StandardNormal, standard_normal
from .base import Prior


class StandardNormalPrior(Prior):
    """N(0, I) over J dimensions; no parameters. Its distribution has the KL of a diagonal
    Gaussian to it in closed form (appendix B), which estimator B uses."""

    def forward(self) -> StandardNormal:
        return standard_normal(self.latent_dim, device=self.anchor.device, dtype=self.anchor.dtype)

    def sample(self, n, generator=None):
        return torch.randn(n, self.latent_dim, generator=generator, device=self.anchor.device,
                           dtype=self.anchor.dtype)
