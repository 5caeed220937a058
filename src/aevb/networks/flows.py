"""Inverse autoregressive flow posteriors (Kingma et al. 2016, "Improved variational inference
with inverse autoregressive flow"): a diagonal Gaussian followed by T invertible steps,

    z_0 = mu(x) + sigma(x) * eps,                    eps ~ N(0, I)
    z_t = m_t(z_{t-1}, h) + exp(s_t(z_{t-1}, h)) * z_{t-1},   t = 1..T
    log q_phi(z_T|x) = log N(z_0; mu, diag(sigma^2)) - sum_t sum_j s_t,j(z_{t-1}, h)

where (m_t, s_t) = MADE_t(z_{t-1}, h): output j depends on the coordinates before j in the
step's order only (a masked MLP, Germain et al. 2015), so each step's Jacobian is triangular
with diagonal exp(s_t), and its log-determinant is sum_j s_t,j. h is the encoder body's
features, the context of every step. Orders alternate between steps (1..J, then J..1), so
that each coordinate comes to depend on all others. With every step's weights zero the flow
is the identity and q_phi(z|x) the diagonal Gaussian.

The density is known at the flow's own draws, which is all the objectives and importance
sampling ask for (`log_prob` of the z that `rsample_from` returned); evaluating it at any
other z would need the flow's inverse, which takes J sequential passes, and is refused.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution, constraints

from ..maths.distributions import DiagonalGaussian, diagonal_gaussian
from .heads import Head

STEPS = 2  # T, when ModelConfig.flow_steps is 0
MEAN_DRAWS = 64  # draws behind `mean` (the flow has no closed-form mean)


class MADE(nn.Module):
    """(z [..., J], h [..., H]) -> (m, s) [..., J] each, output j a function of the z_i whose
    order comes before j's (and of all of h): one masked hidden layer of `width` units."""

    def __init__(self, latent_dim: int, context: int, width: int, reverse: bool):
        super().__init__()
        order = torch.arange(1, latent_dim + 1)  # the coordinates' places, 1..J
        if reverse:
            order = order.flip(0)
        degree = torch.arange(width) % latent_dim  # hidden unit k sees places <= degree k
        self.z_in = nn.Linear(latent_dim, width)
        self.h_in = nn.Linear(context, width, bias=False)
        self.out = nn.Linear(width, 2 * latent_dim)
        self.register_buffer("in_mask", (order[None, :] <= degree[:, None]).float())  # [W, J]
        out_mask = (degree[None, :] < order[:, None]).float()  # [J, W]
        self.register_buffer("out_mask", torch.cat([out_mask, out_mask]))  # [2J, W]

    def forward(self, z: torch.Tensor, h: torch.Tensor):
        a = nn.functional.linear(z, self.z_in.weight * self.in_mask, self.z_in.bias)
        a = torch.tanh(a + self.h_in(h))  # [..., W]
        out = nn.functional.linear(a, self.out.weight * self.out_mask, self.out.bias)
        return out.chunk(2, dim=-1)  # m, s [..., J]


class IAF(nn.Module, Head):
    """The head q_phi(z|x) = IAF_T(N(mu, diag(sigma^2)); h) on body features h [N, H]: the
    body's last layer gives (mu, log sigma^2), its features before it the context h."""

    name = "iaf"
    per_value = 2
    exports_parameters = False  # no (mean, log_var) describes it

    def __init__(self, latent_dim: int, context: int, steps: int = STEPS):
        super().__init__()
        width = max(2 * latent_dim, context)
        self.steps = nn.ModuleList(MADE(latent_dim, context, width, reverse=t % 2 == 1)
                                   for t in range(steps))

    @classmethod
    def build(cls, c, context: int) -> "IAF":
        return cls(c.latent_dim, context, c.flow_steps or STEPS)

    def forward(self, out):
        raise TypeError("the IAF head needs the body's features: call after_linear(h, layer)")

    def after_linear(self, h: torch.Tensor, layer: nn.Linear) -> "IAFPosterior":
        mu, log_var = layer(h).chunk(2, dim=-1)  # [N, J] each
        return IAFPosterior(diagonal_gaussian(mu, log_var), h, self.steps)


class IAFPosterior(Distribution):
    """q_phi(z|x) of `IAF`: batch [N], event [J]. `rsample_from(eps)` gives z_T [L, N, J] and
    keeps log q(z_T|x) [L, N] for `log_prob` of that z."""

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, base: DiagonalGaussian, context: torch.Tensor, steps: nn.ModuleList):
        self.base, self.context, self.steps = base, context, steps
        self._last = None  # (z_T, log q(z_T|x)) of the last draw
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    def flow(self, z0: torch.Tensor):
        """z_T and sum_t log |det dz_t/dz_{t-1}| for z_0 [..., N, J]: ([..., N, J], [..., N])."""
        z, log_det = z0, torch.zeros(z0.shape[:-1], dtype=z0.dtype, device=z0.device)
        for step in self.steps:
            m, s = step(z, self.context)
            z = m + torch.exp(s) * z
            log_det = log_det + s.sum(-1)
        return z, log_det

    def rsample_from(self, eps: torch.Tensor) -> torch.Tensor:
        z0 = self.base.base_dist.loc + self.base.base_dist.scale * eps  # [L, N, J]
        z, log_det = self.flow(z0)
        self._last = (z, self.base.log_prob(z0) - log_det)
        return z

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        loc = self.base.base_dist.loc
        return self.rsample_from(torch.randn(torch.Size(sample_shape) + loc.shape,
                                             dtype=loc.dtype, device=loc.device))

    def draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        loc = self.base.base_dist.loc
        return self.rsample_from(torch.randn(loc.shape, generator=generator, dtype=loc.dtype,
                                             device=loc.device))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        if self._last is None or z is not self._last[0]:
            raise ValueError("an IAF posterior's density is known at its own draws only "
                             "(rsample_from); inverting the flow is not supported")
        return self._last[1]

    @property
    def mean(self) -> torch.Tensor:
        """E_q[z|x] [N, J], estimated from MEAN_DRAWS draws of a fixed seed."""
        loc = self.base.base_dist.loc
        gen = torch.Generator(device=loc.device).manual_seed(0)
        eps = torch.randn((MEAN_DRAWS, *loc.shape), generator=gen, dtype=loc.dtype,
                          device=loc.device)
        z, _ = self.flow(self.base.base_dist.loc + self.base.base_dist.scale * eps)
        return z.mean(0)
