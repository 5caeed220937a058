"""A VAE whose marginal likelihood, posterior and bound all have closed forms.

Used as independent truth for the objectives and the likelihood estimators. Fixed weights,
no randomness in its construction beyond a fixed seed.
"""
import numpy as np
import scipy.stats
import torch
from torch import nn

from aevb.maths.distributions import diagonal_gaussian, standard_normal


class LinearGaussian(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), so p(x) = N(b, W W^T + s^2 I) exactly.

    q(z|x) has the exact posterior mean and `scale` times the posterior standard deviation
    (the posterior covariance is (I + W^T W / s^2)^-1; W is chosen with orthogonal columns so
    that it is diagonal and q's diagonal Gaussian family holds a scaled copy of it).
    """

    def __init__(self, scale: float):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        d, j, self.s = 5, 2, 0.5
        w, _ = torch.linalg.qr(torch.randn(d, j, generator=g, dtype=torch.float64))
        self.w = nn.Parameter(w * torch.tensor([1.5, 0.7], dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(d, generator=g, dtype=torch.float64))
        self.scale = scale

        class Config:
            latent_dim = j
            data_dim = d
            hidden = (1,)
        self.config = Config()

    def posterior_var(self):
        return 1.0 / (1.0 + (self.w**2).sum(0) / self.s**2)  # [J], diagonal by construction

    def encode(self, x):
        var = self.posterior_var()
        mean = (x - self.b) @ self.w / self.s**2 * var
        return diagonal_gaussian(mean, torch.log(var * self.scale**2).expand_as(mean))

    def decode(self, z):
        loc = z @ self.w.T + self.b
        return torch.distributions.Independent(
            torch.distributions.Normal(loc, torch.full_like(loc, self.s)), 1)

    def prior(self):
        return standard_normal(2, dtype=torch.float64)

    def exact_log_px(self, x):
        w, b = self.w.detach().numpy(), self.b.detach().numpy()
        cov = w @ w.T + self.s**2 * np.eye(len(b))
        return scipy.stats.multivariate_normal(b, cov).logpdf(x.numpy())

    # ---- closed forms, in numpy float64, independent of aevb's code
    def _np(self):
        return self.w.detach().numpy(), self.b.detach().numpy()

    def q_params(self, x):
        q = self.encode(x)
        return q.base_dist.loc.detach().numpy(), q.base_dist.scale.detach().numpy() ** 2

    def exact_elbo(self, x):
        """E_q[log p(x|z)] - KL(q || N(0, I)) for Gaussian q and a linear-Gaussian decoder."""
        w, b = self._np()
        mu, var = self.q_params(x)
        xn = x.numpy()
        d = len(b)
        resid = xn - mu @ w.T - b
        expected_loglik = (-0.5 * d * np.log(2 * np.pi * self.s**2)
                           - ((resid**2).sum(-1) + (var * (w**2).sum(0)).sum(-1))
                           / (2 * self.s**2))
        kl = 0.5 * (mu**2 + var - 1 - np.log(var)).sum(-1)
        return expected_loglik - kl

    def kl_to_posterior(self, x):
        """KL(q(z|x) || p(z|x)); the exact posterior is N(S W^T (x - b) / s^2, S)."""
        w, b = self._np()
        mu, var = self.q_params(x)
        j = w.shape[1]
        s_inv = np.eye(j) + w.T @ w / self.s**2
        s_cov = np.linalg.inv(s_inv)
        m = (x.numpy() - b) @ w @ s_cov.T / self.s**2
        diff = m - mu
        return 0.5 * ((np.diag(s_inv) * var).sum(-1)
                      + np.einsum("ni,ij,nj->n", diff, s_inv, diff) - j
                      + np.linalg.slogdet(s_cov)[1] - np.log(var).sum(-1))
