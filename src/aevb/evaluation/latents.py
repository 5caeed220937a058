"""How a trained model uses its latent space: active units and the KL per dimension.

A VAE can leave latent dimensions unused: q_phi(z_j|x) then equals the prior N(0, 1) for
every x, the dimension carries no information about x, and its KL term is 0. Two measures
tell how many dimensions a model uses:

- active units (Burda et al. 2015, section 5.2): dimension j is active if
  A_j = Cov_x(E_q(z|x)[z_j]) > 0.01, i.e. its posterior mean moves with the data;
- the KL per dimension, E_x[KL(q_phi(z_j|x) || N(0, 1))] in nats: what the bound pays for
  each dimension (the sum over j is the bound's KL term). It exists only where the prior is
  N(0, I): a learned prior such as the mixture does not factorise over dimensions, and the KL
  of each q(z_j|x) to N(0, 1) would not be what the bound pays, so it is None there; the same
  for a flow posterior, whose q(z_j|x) has no closed form.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..maths.distributions import StandardNormal, is_diagonal_gaussian, kl_per_dimension

ACTIVE_THRESHOLD = 0.01  # Burda et al.'s threshold on the variance of the posterior mean


@dataclass(frozen=True)
class LatentUse:
    active_units: int  # dimensions with activity above ACTIVE_THRESHOLD
    activity: list[float]  # A_j = Var_x(E_q[z_j | x]) per dimension [J]
    # E_x KL(q(z_j|x) || N(0, 1)) per dimension [J], nats; None unless p(z) = N(0, I)
    kl_per_dimension: list[float] | None
    # (active units of z1, of z2, ...) and each layer's size, for a hierarchy
    # (aevb.hierarchy: z1 the first values of z, z2 the last top_latent_dim); one layer: one
    active_per_layer: tuple[int, ...] = ()
    layer_sizes: tuple[int, ...] = ()


@torch.no_grad()
def latent_use(model, x: torch.Tensor, batch_size: int = 1000) -> LatentUse:
    """Activity and KL of every latent dimension over the rows of x [N, D] (N >= 2)."""
    per_dimension = isinstance(model.prior(), StandardNormal)
    means, kls = [], []
    for start in range(0, len(x), batch_size):
        q = model.encode(x[start:start + batch_size])  # batch [n], event [J]
        means.append(q.mean.double())  # a flow's: a Monte Carlo estimate
        per_dimension = per_dimension and is_diagonal_gaussian(q)
        if per_dimension:
            kls.append(kl_per_dimension(q, torch.float64))  # [n, J]
    mu = torch.cat(means)  # [N, J]
    activity = mu.var(0, unbiased=True)  # [J]
    active = activity > ACTIVE_THRESHOLD  # [J]
    j2 = getattr(model.config, "top_latent_dim", 0)
    sizes = (len(active) - j2, j2) if j2 else (len(active),)
    per_layer = tuple(int(part.sum()) for part in active.split(sizes))
    return LatentUse(int(active.sum()), activity.tolist(),
                     torch.cat(kls).mean(0).tolist() if per_dimension else None,
                     per_layer, sizes)
