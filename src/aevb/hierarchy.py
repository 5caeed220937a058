"""Two stochastic layers (Burda et al. 2015, section 5): z = (z1, z2), z1 [J1] next to the
data and z2 [J2] above it,

    generative     p(z2) p_theta(z1|z2) p_theta(x|z1)      p(z2): the model's prior
    recognition    q_phi(z1|x) q_phi(z2|z1)

each conditional a diagonal Gaussian from an MLP (`--top-hidden`, Burda's 100-100) except
p(x|z1), the model's decoder. The layers are one latent vector of J = J1 + J2 values
(`ModelConfig.latent_dim`; the last `top_latent_dim` of them are z2), so the objectives, the
noise eps [L, N, J] and importance sampling with the joint q(z1, z2|x) as proposal are those
of one layer: `TwoLayerPosterior` and `TwoLayerPrior` are distributions over all of z with
the densities

    log q(z|x) = log N(z1; mu1(x), s1(x)^2) + log N(z2; mu2(z1), s2(z1)^2)
    log p(z)   = log p(z2) + log N(z1; m(z2), s(z2)^2)

in nats, exact at any z, and draws z1 first, then z2 (or z2, then z1) from the noise.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution, constraints

from .maths.distributions import DiagonalGaussian
from .networks.heads import POSTERIOR
from .networks.mlp import MLPNetwork
from .priors.base import Prior

MEAN_DRAWS = 64  # draws behind the posterior's `mean` (E[z2|x] has no closed form)


class TwoLayerEncoder(nn.Module):
    """x -> q_phi(z1, z2|x): the family's encoder for z1 and an MLP for q(z2|z1)."""

    def __init__(self, bottom: nn.Module, j1: int, j2: int, hidden, activation: str):
        super().__init__()
        self.bottom = bottom
        self.upper = MLPNetwork(j1, hidden, j2, POSTERIOR, activation)

    def forward(self, x: torch.Tensor) -> "TwoLayerPosterior":
        return TwoLayerPosterior(self.bottom(x), self.upper)


class BottomDecoder(nn.Module):
    """z [..., J] -> p_theta(x|z1): the family's decoder on the first J1 values of z."""

    def __init__(self, decoder: nn.Module, j1: int):
        super().__init__()
        self.decoder, self.j1 = decoder, j1

    def forward(self, z: torch.Tensor) -> Distribution:
        return self.decoder(z[..., :self.j1])


class TwoLayerPosterior(Distribution):
    """q(z1|x) q(z2|z1) over z = (z1, z2): batch [N], event [J1 + J2]."""

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, q1: DiagonalGaussian, upper: nn.Module):
        self.q1, self.upper = q1, upper
        j = q1.event_shape[0] + upper.net[-1].out_features // 2
        super().__init__(q1.batch_shape, torch.Size([j]), validate_args=False)

    def rsample_from(self, eps: torch.Tensor) -> torch.Tensor:
        """z [L, N, J] from eps [L, N, J]: z1 from eps's first J1 values, then z2."""
        j1 = self.q1.event_shape[0]
        z1 = self.q1.base_dist.loc + self.q1.base_dist.scale * eps[..., :j1]
        q2 = self.upper(z1).base_dist
        return torch.cat([z1, q2.loc + q2.scale * eps[..., j1:]], -1)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        loc = self.q1.base_dist.loc
        return self.rsample_from(torch.randn(torch.Size(sample_shape) + loc.shape[:-1]
                                             + self.event_shape, dtype=loc.dtype,
                                             device=loc.device))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        j1 = self.q1.event_shape[0]
        z1 = z[..., :j1]
        return self.q1.log_prob(z1) + self.upper(z1).log_prob(z[..., j1:])

    @property
    def mean(self) -> torch.Tensor:
        """(E[z1|x], E[z2|x]) [N, J]: mu1 exactly, E[mu2(z1)] from MEAN_DRAWS fixed draws."""
        loc = self.q1.base_dist.loc
        gen = torch.Generator(device=loc.device).manual_seed(0)
        eps = torch.randn((MEAN_DRAWS, *loc.shape[:-1], *self.event_shape), generator=gen,
                          dtype=loc.dtype, device=loc.device)
        z = self.rsample_from(eps)
        return torch.cat([loc, z[..., loc.shape[-1]:].mean(0)], -1)


class TwoLayerPrior(Prior):
    """p(z2) p(z1|z2) over z = (z1, z2), J = J1 + J2: `top` is p(z2) (any prior of
    `aevb.priors` over J2), `lower` the MLP of p(z1|z2); both train with theta."""

    def __init__(self, top: Prior, j1: int, hidden, activation: str):
        super().__init__(j1 + top.latent_dim)
        self.top = top
        self.lower = MLPNetwork(top.latent_dim, hidden, j1, POSTERIOR, activation)
        self.j1 = j1

    def reset(self, generator=None) -> None:
        self.top.reset(generator)

    def forward(self) -> "_TwoLayerDensity":
        return _TwoLayerDensity(self.top(), self.lower, self.j1)

    def sample(self, n, generator=None):
        z2 = self.top.sample(n, generator)  # [n, J2]
        p1 = self.lower(z2).base_dist
        eps = torch.randn(p1.loc.shape, generator=generator, dtype=p1.loc.dtype,
                          device=p1.loc.device)
        return torch.cat([p1.loc + p1.scale * eps, z2], -1)


class _TwoLayerDensity(Distribution):
    """p(z) = p(z2) N(z1; m(z2), diag(s(z2)^2)), event [J1 + J2]."""

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, top: Distribution, lower: nn.Module, j1: int):
        self.top, self.lower, self.j1 = top, lower, j1
        super().__init__(torch.Size(), torch.Size([j1 + top.event_shape[0]]),
                         validate_args=False)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        z2 = z[..., self.j1:]
        return self.top.log_prob(z2) + self.lower(z2).log_prob(z[..., :self.j1])
