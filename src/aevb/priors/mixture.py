"""A learned mixture-of-Gaussians prior: the worked example of adding a prior
(docs/architecture.md). One file, plus its line in `aevb.priors.REGISTRY`.

    p(z) = sum_k pi_k N(z; m_k, diag(s_k^2)),   pi = softmax(a),   k = 1..K

a [K], m [K, J] and log s [K, J] are parameters trained with theta. The KL of q_phi(z|x) to it
has no closed form, so estimator B takes the Monte Carlo estimate on the same z
(`distributions.kl_to_prior`); the importance-sampled log p(x) needs nothing new.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from .base import Prior

COMPONENTS = 10


class GaussianMixturePrior(Prior):
    def __init__(self, latent_dim: int, components: int = COMPONENTS):
        super().__init__(latent_dim)
        self.logits = nn.Parameter(torch.zeros(components))  # a [K]
        self.loc = nn.Parameter(torch.randn(components, latent_dim))  # m [K, J]
        self.log_scale = nn.Parameter(torch.zeros(components, latent_dim))  # log s [K, J]

    @classmethod
    def build(cls, latent_dim, *, encoder=None, data_shape=None, components=0):
        return cls(latent_dim, components or COMPONENTS)

    def forward(self) -> MixtureSameFamily:
        parts = Independent(Normal(self.loc, self.log_scale.exp(), validate_args=False), 1)
        return MixtureSameFamily(Categorical(logits=self.logits, validate_args=False), parts,
                                 validate_args=False)

    def sample(self, n, generator=None):
        k = torch.multinomial(self.logits.softmax(0), n, replacement=True,
                              generator=generator)  # [n]
        eps = torch.randn(n, self.latent_dim, generator=generator, device=self.loc.device,
                          dtype=self.loc.dtype)
        return self.loc[k] + self.log_scale[k].exp() * eps
