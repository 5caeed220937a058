"""The VampPrior (Tomczak & Welling 2018): the prior as the mixture of the encoder's
posteriors at K learned pseudo-inputs u_1..u_K, points in data space,

    p_lambda(z) = (1/K) sum_k q_phi(z | u_k),    u_k = hardtanh(w_k; 0, 1),   w [K, D]

so the prior follows where the encoder puts the data (the optimal prior for a given encoder
is the aggregate posterior (1/N) sum_n q_phi(z|x_n); the VampPrior approximates it with
K << N points). The weights w are trained with theta; the encoder is the model's own, shared,
not copied (its parameters stay phi's). As for any prior without a closed-form KL, estimator
B takes the Monte Carlo KL on the same z (`distributions.kl_to_prior`).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from .base import Prior

COMPONENTS = 500  # K, the paper's MNIST setting
INIT_MEAN, INIT_STD = 0.05, 0.01  # w's start, the paper's code for binary images


class VampPrior(Prior):
    # --engine auto compiles runs from this many steps on: the eager step's mixture density
    # over [L, N, K, J] is several times slower than the fused compiled one, so compiling pays
    # within about a thousand steps even with a cold cache (docs/engines.md).
    COMPILE_MIN_STEPS = 1_000

    def __init__(self, latent_dim: int, encoder: nn.Module, data_shape,
                 components: int = COMPONENTS):
        super().__init__(latent_dim)
        self.pseudo_inputs = nn.Parameter(torch.full((components, math.prod(data_shape)),
                                                     INIT_MEAN))  # w [K, D]
        # In a tuple, not as an attribute: the encoder is the model's, and registering it here
        # would give its parameters a second name in every checkpoint.
        self._encoder = (encoder,)

    @classmethod
    def build(cls, latent_dim, *, encoder=None, data_shape=None, components=0):
        head = getattr(encoder, "distribution", None)
        if head is None or not head.exports_parameters:
            from ..errors import AevbError

            raise AevbError("the VampPrior is a mixture of the encoder's diagonal Gaussians "
                            "q(z|u_k); a flow posterior or two stochastic layers give no such "
                            "density (use --posterior gaussian and one layer with --prior vamp)")
        return cls(latent_dim, encoder, data_shape, components or COMPONENTS)

    def reset(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.pseudo_inputs.copy_(INIT_MEAN + INIT_STD * torch.randn(
                self.pseudo_inputs.shape, generator=generator))

    def points(self) -> torch.Tensor:
        """The pseudo-inputs u [K, D], points of data space (pixels in [0, 1])."""
        return torch.nn.functional.hardtanh(self.pseudo_inputs, 0.0, 1.0)

    def components(self) -> Independent:
        """q_phi(z|u_k) for every k: batch [K], event [J]."""
        q = self._encoder[0](self.points())
        return Independent(Normal(q.base_dist.loc, q.base_dist.scale, validate_args=False), 1)

    def forward(self) -> MixtureSameFamily:
        parts = self.components()
        k = parts.batch_shape[0]
        uniform = torch.zeros(k, device=self.pseudo_inputs.device, dtype=self.pseudo_inputs.dtype)
        return MixtureSameFamily(Categorical(logits=uniform, validate_args=False), parts,
                                 validate_args=False)

    def sample(self, n, generator=None):
        parts = self.components()
        k = torch.randint(parts.batch_shape[0], (n,), generator=generator,
                          device=self.pseudo_inputs.device)  # [n]
        loc, scale = parts.base_dist.loc[k], parts.base_dist.scale[k]  # [n, J]
        return loc + scale * torch.randn(loc.shape, generator=generator, device=loc.device,
                                         dtype=loc.dtype)
