"""The one importance-sampling estimator of log p_theta(x), chunked so that memory stays
bounded for any K; `aevb.evaluation.evaluate` and full VB's predictive likelihood both use it.
Measurements behind the chunk sizes: docs/performance.md.
"""
from __future__ import annotations

import math
from functools import partial

import torch

from ..compute import threads
from ..full_vb import UnderTheta
from ..maths import objectives
from ..networks import widest

# Elements per [K_chunk, N_chunk, width] activation (16 MB in float32): bounds memory for any
# K and keeps a chunk in the L3 cache (measured: docs/performance.md, "Decisions").
CHUNK_ELEMENTS = 2**22
# Noise values drawn at once for one batch of data points (256 MB in float32). Up to this
# all K draws are made together; beyond it (a K of millions) chunk by chunk, so that memory
# stays bounded for any K. The two ways draw different (equally valid) noise.
NOISE_ELEMENTS = 2**26


@torch.no_grad()
def importance_log_likelihood(model, x: torch.Tensor, k: int, seed: int,
                              batch_size: int = 100, k_chunk: int | None = None,
                              noise: torch.Tensor | None = None,
                              log_weights=None) -> torch.Tensor:
    """log p_theta(x) for every row of x [N, D] by importance sampling with K = k; [N] nats:

    log p(x) ~ log (1/K) sum_k w_k,  log w_k = log p_theta(x, z_k) - log q_phi(z_k|x).

    The one importance-sampling estimator of aevb. Data points go in batches of
    `batch_size`; the K samples in chunks of `k_chunk` (chosen from CHUNK_ELEMENTS when None)
    whose log-weights are combined with logsumexp, so the activations' memory is bounded for
    any K and the result equals the one-shot `objectives.iwae_bound`. The noise is drawn from
    `seed` (all K draws of a batch at once up to NOISE_ELEMENTS values, chunk by chunk beyond,
    so its memory is bounded too), or given whole as `noise` [K, N, J] (standard normal
    draws, e.g. the ones an exported scorer was given). `log_weights(x_b [N_b, D],
    eps [k_chunk, N_b, J]) -> [k_chunk, N_b]` gives the model's log-weights: by default
    `objectives.log_weights` (or the native backend's pass where it serves the model); full VB
    supplies its own (`predictive_log_likelihood`, below).
    """
    if noise is not None and tuple(noise.shape) != (k, len(x), model.config.latent_dim):
        from ..errors import AevbError

        raise AevbError(f"the noise must have shape [K, N, J] = [{k}, {len(x)}, "
                        f"{model.config.latent_dim}], got {list(noise.shape)}")
    if k_chunk is None:
        k_chunk = max(1, min(k, CHUNK_ELEMENTS // (batch_size * widest(model.config))))
    gen = torch.Generator(device=x.device).manual_seed(seed)
    if log_weights is None:
        from ..compute import engine

        native = engine.backend("native").log_weights_for(model, x)
        log_weights = native or partial(objectives.log_weights, model)

    out = []
    j = model.config.latent_dim
    with threads.Sharing() as sharing:  # fewer threads while other processes need the cores
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            if noise is not None:
                eps = noise[:, start:start + batch_size].to(device=x.device, dtype=xb.dtype)
            elif k * len(xb) * j <= NOISE_ELEMENTS:
                # All K noise draws at once ([K, N_b, J] is small next to the activations), so
                # the chunk size changes nothing but memory.
                eps = torch.randn(k, len(xb), j, generator=gen, device=x.device, dtype=xb.dtype)
            else:
                eps = None
            out.append(_batch(log_weights, xb, eps, k, k_chunk, j, gen, sharing))
    return torch.cat(out)


def _batch(log_weights, xb, eps, k, k_chunk, j, gen, sharing) -> torch.Tensor:
    """log (1/K) sum_k w_k for one batch xb [N_b, D]: the K log-weights in chunks, from the
    noise `eps` [K, N_b, J] or, where it is None, from draws of `gen` chunk by chunk; [N_b]."""
    def chunk(done):  # [k_chunk, N_b, J]
        if eps is not None:
            return eps[done:done + k_chunk]
        return torch.randn(min(k_chunk, k - done), len(xb), j, generator=gen,
                           device=xb.device, dtype=xb.dtype)

    sums = []  # [N_b] each
    for done in range(0, k, k_chunk):
        sums.append(torch.logsumexp(log_weights(xb, chunk(done)), dim=0))
        sharing.tick()
        if len(sums) == 4096:  # a K of millions: a bounded list too
            sums = [torch.logsumexp(torch.stack(sums), dim=0)]
    return torch.logsumexp(torch.stack(sums), dim=0) - math.log(k)


@torch.no_grad()
def predictive_log_likelihood(model, x: torch.Tensor, k: int, seed: int,
                              batch_size: int = 10000) -> torch.Tensor:
    """log E_{q_phi(theta)}[p(x | theta)] for every row of x [N, D] by importance sampling over
    (theta, z) pairs; [N] nats:

    log (1/K) sum_k p(x, z_k | theta_k) / q_phi(z_k|x),  theta_k ~ q_phi(theta), z_k ~ q_phi(z|x).

    Each pair's weight is unbiased for the predictive density, so its expectation is a lower
    bound that rises to it as K grows. Each theta_k serves a whole batch of points (one decoder
    per draw, not one per point and draw): the points' estimates are correlated, each one exact
    in expectation. The estimator is `importance.importance_log_likelihood` with these
    log-weights (z noise from `seed`, theta noise from `seed + 1`).
    """
    gen = torch.Generator(device=x.device).manual_seed(seed + 1)

    def weights(xb, eps):  # eps [k_chunk, N_b, J] -> [k_chunk, N_b], a fresh theta per row
        rows = []
        for e in eps:
            theta = model.theta_posterior.draw(model.decoder, model.theta_posterior.noise(gen))
            rows.append(objectives.log_weights(UnderTheta(model, theta), xb, e[None])[0])
        return torch.stack(rows)

    return importance_log_likelihood(model, x, k, seed, batch_size, log_weights=weights)
