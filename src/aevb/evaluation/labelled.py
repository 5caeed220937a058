"""Evaluation of a model with a label (`aevb.labelled`): what its bound and its log-likelihood
are, and its classifier's test error.

    conditional VAE (no classifier)   the bound and log p(x|y) with each row's label y observed
    M2 (a classifier q(y|x))          U(x) and log p(x) = log sum_y p(y) p(x|y), y summed out
                                      exactly (`maths.semi_supervised`); the test error of
                                      argmax_y q(y|x)

All in nats per data point. log p(x|y) is the importance-sampled estimate of
`importance.importance_log_likelihood` on the model given y; M2's marginal spends K draws on
each class.
"""
from __future__ import annotations

import torch

from ..errors import AevbError
from ..maths.objectives import elbo_b
from ..maths.semi_supervised import log_marginal, unlabelled_bound
from .importance import importance_log_likelihood


def label_bound(model, x: torch.Tensor, y: torch.Tensor | None,
                eps: torch.Tensor) -> torch.Tensor:
    """Estimator B's bound of a model with a label for x [N, D] with noise eps [L, N, J]: on
    log p(x) for M2 (U(x)), on log p(x|y) for a conditional VAE (the labels y [N]); [N]."""
    if model.classifier is not None:
        return unlabelled_bound(model, x, eps)
    return elbo_b(model.given(checked_labels(y, len(x))), x, eps)


@torch.no_grad()
def label_log_likelihood(model, x: torch.Tensor, y: torch.Tensor | None, k: int, seed: int,
                         batch_size: int = 100, progress=None) -> torch.Tensor:
    """log p(x) (M2: the classes summed out) or log p(x|y) (a conditional VAE) for every row
    of x [N, D] by importance sampling with K = k draws of z (per class for M2); [N] nats.
    `progress(done, n)`, where given, hears of each batch."""
    if model.classifier is None:
        y = checked_labels(y, len(x))
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        if model.classifier is None:
            out.append(importance_log_likelihood(model.given(y[start:start + batch_size]), xb,
                                                 k, seed + start, len(xb)))
        else:
            per_class = [importance_log_likelihood(
                model.given(torch.full((len(xb),), c, dtype=torch.int64)), xb, k,
                seed + start, len(xb)) for c in range(model.config.classes)]
            out.append(log_marginal(torch.stack(per_class)))  # [N_b]
        if progress is not None:
            progress(start + len(xb), len(x))
    return torch.cat(out)


@torch.no_grad()
def classification_error(model, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
    """The share of rows of x whose most probable class under q_phi(y|x) is not y [N]."""
    wrong = sum(int((model.classify(x[i:i + batch]).logits.argmax(-1)
                     != y[i:i + batch].to(x.device)).sum()) for i in range(0, len(x), batch))
    return wrong / len(x)


def checked_labels(y, n: int) -> torch.Tensor:
    """y, checked to be present and to have one label per data point."""
    if y is None:
        raise AevbError("a conditional model is scored with the data's labels: this data has "
                        "none")
    if len(y) != n:
        raise AevbError(f"{len(y)} labels for {n} data points")
    return y
