"""Full variational Bayes over the generative model's parameters (the paper's appendix F).

The model gains a prior p_alpha(theta) = N(0, alpha^2 I) over the decoder's weights and biases
theta, and q_phi(theta) = N(mu, diag(sigma^2)) approximates their posterior. The marginal
likelihood of the whole dataset X of N points is bounded by

    log p_alpha(X) >= E_{q_phi(theta)}[ sum_i L(theta, phi; x_i) ] - KL(q_phi(theta) || p_alpha(theta)),

where L(theta, phi; x) is the per-point bound of eq. 3 with the amortised q_phi(z|x) over the
local z (the encoder keeps point-estimate weights, as in the appendix). theta is drawn by the
reparameterisation theta = mu + sigma * zeta, zeta ~ N(0, I), once per minibatch, and the KL
term is exact. mu is the decoder's own parameters, so `model.decode` is the decoder at the
posterior mean and every picture and export of a point-estimate model works unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from .maths.objectives import elbo_b


class ParameterPosterior(nn.Module):
    """log sigma of q_phi(theta) = N(mu, diag(sigma^2)), one tensor per decoder parameter,
    in the order of `decoder.named_parameters()`; mu is the decoder's parameters themselves."""

    def __init__(self, decoder: nn.Module, init_std: float = 1e-3):
        super().__init__()
        self.names = [name for name, _ in decoder.named_parameters()]
        self.log_std = nn.ParameterList(
            [nn.Parameter(torch.full_like(p, math.log(init_std))) for p in decoder.parameters()])

    def reset(self, init_std: float) -> None:
        """Every sigma set to init_std (after `model.initialize` drew all parameters)."""
        with torch.no_grad():
            for log_std in self.log_std:
                log_std.fill_(math.log(init_std))

    def noise(self, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """zeta ~ N(0, I), one tensor of each parameter's shape (a list, in parameter order)."""
        return [torch.randn(s.shape, generator=generator, device=s.device, dtype=s.dtype)
                for s in self.log_std]

    def draw(self, decoder: nn.Module, zeta) -> dict[str, torch.Tensor]:
        """theta = mu + sigma * zeta, as {parameter name: tensor} for `functional_call`."""
        return {name: mu + log_std.exp() * z for name, mu, log_std, z in
                zip(self.names, decoder.parameters(), self.log_std, zeta)}

    def kl(self, decoder: nn.Module, prior_std: float) -> torch.Tensor:
        """KL(q_phi(theta) || N(0, alpha^2 I)) in closed form, summed over every parameter
        (a 0-d tensor, nats): sum log(alpha / sigma) + (sigma^2 + mu^2) / (2 alpha^2) - 1/2."""
        total = 0.0
        for mu, log_std in zip(decoder.parameters(), self.log_std):
            total = total + (math.log(prior_std) - log_std
                             + ((2 * log_std).exp() + mu**2) / (2 * prior_std**2) - 0.5).sum()
        return total


class UnderTheta:
    """The VAE with its decoder's parameters replaced by a draw theta ({name: tensor}): what
    the objectives of `aevb.maths.objectives` take as `model` (encode, decode, prior, config)."""

    def __init__(self, model, theta: dict[str, torch.Tensor]):
        self.model, self.theta, self.config = model, theta, model.config

    def encode(self, x: torch.Tensor):
        return self.model.encode(x)

    def decode(self, z: torch.Tensor):
        return functional_call(self.model.decoder, self.theta, (z,))

    def prior(self):
        return self.model.prior()

    def parameters(self):
        """The model's own parameters (where callers look for its device and dtype)."""
        return self.model.parameters()


def full_vb_bound(model, x: torch.Tensor, eps: torch.Tensor, zeta,
                  n_data: int) -> torch.Tensor:
    """Each point's share of the appendix F bound, [N] nats:

    L~(theta, phi; x) - KL(q_phi(theta) || p_alpha(theta)) / n_data,  theta = mu + sigma * zeta,

    with L~ estimator B under theta (eps [L, N, J]) and zeta from `ParameterPosterior.noise`
    (one draw of theta for the whole batch). Summed over the n_data training points it is an
    unbiased estimate of the bound on log p_alpha(X); its minibatch mean is that over n_data.
    """
    posterior = model.theta_posterior
    theta = posterior.draw(model.decoder, zeta)
    kl = posterior.kl(model.decoder, model.config.theta_prior_std)
    return elbo_b(UnderTheta(model, theta), x, eps) - kl / n_data


@torch.no_grad()
def average_full_vb_bound(model, x: torch.Tensor, n_data: int, seed: int,
                          batch: int = 1000) -> float:
    """The mean of `full_vb_bound` over the rows of x (a fresh theta per batch, noise from
    `seed`), nats per data point."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    total = 0.0
    for start in range(0, len(x), batch):
        xb = x[start:start + batch]
        eps = torch.randn(1, len(xb), model.config.latent_dim, generator=gen, device=x.device,
                          dtype=xb.dtype)
        zeta = model.theta_posterior.noise(gen)
        total += float(full_vb_bound(model, xb, eps, zeta, n_data).double().sum())
    return total / len(x)


@dataclass(frozen=True)
class LayerStd:
    """How wide q_phi(theta) is for one decoder parameter tensor."""

    name: str
    size: int
    mean: float  # mean sigma over the tensor's entries
    median: float
    min: float
    max: float


def std_summary(model) -> list[LayerStd]:
    """The posterior standard deviations sigma of each decoder parameter tensor."""
    out = []
    for name, log_std in zip(model.theta_posterior.names, model.theta_posterior.log_std):
        s = log_std.detach().exp().double().flatten().cpu()
        out.append(LayerStd(name, s.numel(), float(s.mean()), float(s.median()),
                            float(s.min()), float(s.max())))
    return out
