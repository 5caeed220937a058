"""The objectives of models with a label y (Kingma, Rezende, Mohamed & Welling 2014,
section 3.2), free of parameters, each [N] nats per data point.

A labelled point (x, y) has the bound of the conditional VAE plus the label's prior (eq. 6):

    log p(x, y) >= L(x, y) = E_q(z|x,y)[log p_theta(x|y, z) + log p(z) - log q_phi(z|x, y)]
                             + log p(y),                  p(y) = Cat(1/C): log p(y) = -log C

An unlabelled point sums y out under the classifier q_phi(y|x) (eq. 7): y is discrete, so
instead of the reparameterization trick the expectation over y is an exact sum over the C
classes, and the bound on log p(x) is

    log p(x) >= U(x) = sum_y q_phi(y|x) L(x, y) + H(q_phi(y|x)).

M2 trains on J = sum_labelled L + sum_unlabelled U plus alpha E_labelled[log q_phi(y|x)]
(eq. 9), which teaches the classifier from the labels too. `bound` is any estimator of
`objectives.ESTIMATORS` (A, B or the IWAE bound) applied to the model given y; eps [L, N, J]
is its noise, the same draws for every class of a point.
"""
from __future__ import annotations

import math

import torch

from .objectives import elbo_b


def labelled_bound(model, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor,
                   bound=elbo_b) -> torch.Tensor:
    """L(x, y) for x [N, D] and labels y [N] (int64, or one-hot rows [N, C]): the bound of
    the model given y plus log p(y) = -log C; [N] nats, a lower bound on log p(x, y)."""
    return bound(model.given(y), x, eps) - math.log(model.config.classes)


def class_bounds(model, x: torch.Tensor, eps: torch.Tensor, bound=elbo_b) -> torch.Tensor:
    """L(x, c) for every class c and every row of x [N, D]: [C, N] nats (the N points
    repeated once per class, one pass of the networks)."""
    c, n = model.config.classes, x.shape[0]
    # class 0 for every point, then class 1, ... (by expand, not by index, so that an
    # exported program keeps its batch size free)
    xs = x.reshape(n, -1)[None].expand(c, n, -1).reshape(c * n, -1)  # [C N, D]
    es = eps[:, None].expand(eps.shape[0], c, *eps.shape[1:]).reshape(eps.shape[0], c * n, -1)
    if hasattr(model, "every_class"):  # model.given(those one-hot rows) in fewer operations
        return (bound(model.every_class(n), xs, es) - math.log(c)).reshape(c, n)
    y = torch.eye(c, dtype=x.dtype, device=x.device)[:, None, :].expand(c, n, c).reshape(-1, c)
    return labelled_bound(model, xs, y, es, bound).reshape(c, n)


def unlabelled_bound(model, x: torch.Tensor, eps: torch.Tensor, bound=elbo_b) -> torch.Tensor:
    """U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)) for x [N, D]; [N] nats, a lower bound on
    log p(x) (for the IWAE bound in L: on log p(x) as well, through log p(x, y))."""
    return _expected(model, x, class_bounds(model, x, eps, bound))


def _expected(model, x: torch.Tensor, per_class: torch.Tensor) -> torch.Tensor:
    """sum_y q(y|x) L(x, y) + H(q(y|x)) from L(x, c) [C, N]; [N]."""
    q = model.classify(x)
    return (q.probs.T * per_class).sum(0) + q.entropy()


def m2_objective(model, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor,
                 bound=elbo_b) -> torch.Tensor:
    """Each point's share of J: L(x, y) where its label y >= 0 is observed, U(x) where
    y < 0 (unlabelled); [N] nats. A model without a classifier (a conditional VAE) takes
    labelled points only."""
    if model.classifier is None:
        return labelled_bound(model, x, y, eps, bound)
    # One pass over all classes serves both: a labelled point's L(x, y) is its row y.
    per_class = class_bounds(model, x, eps, bound)  # [C, N]
    known = per_class.gather(0, y.clamp(min=0)[None])[0]
    return torch.where(y >= 0, known, _expected(model, x, per_class))


def classification_log_likelihood(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log q_phi(y|x) for x [N, D] and labels y [N]; [N] nats."""
    return model.classify(x).log_prob(y)


def log_marginal(log_p_x_given_y: torch.Tensor) -> torch.Tensor:
    """log p(x) = log sum_y p(y) p(x|y) from log p(x|y) [C, N] (with log p(y) = -log C);
    [N] nats."""
    return torch.logsumexp(log_p_x_given_y, 0) - math.log(log_p_x_given_y.shape[0])
