"""The pictures of a model with a label (`aevb.labelled`): class-conditional samples and the
analogies of Kingma et al. (2014, Figure 1), where one z keeps a test image's style while
the label changes its class."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .plots import _means, as_images, prior_draws, save_grid


def class_samples(model, path, n: int = 10, seed: int = 0, scale: int | None = None) -> Path:
    """Decoder means of p_theta(x|y, z) for n draws z ~ p(z) (columns, the same in every row)
    and every class y (rows): a column keeps its z, a row its class."""
    c = model.config.classes
    z = prior_draws(model, n, seed)  # [n, J]
    y = torch.arange(c).repeat_interleave(n)  # [C n]
    return save_grid(_means(model.given(y), z.repeat(c, 1)), c, n, path, scale)


def analogies(model, x: torch.Tensor, y: torch.Tensor, path, n: int = 10,
              scale: int | None = None) -> Path:
    """Figure 1 of Kingma et al. (2014): row i holds test image x_i (left), then the decoder
    means of p_theta(x|y=c, z_i) for every class c, with z_i the mean of q_phi(z|x_i, y_i)."""
    x, y, c = x[:n], y[:n], model.config.classes
    device = next(model.parameters()).device
    with torch.no_grad():
        z = model.given(y).encode(x.to(device)).mean  # [n, J]
    classes = torch.arange(c).repeat(len(x))  # [n C]: every class for row 0, then row 1, ...
    decoded = _means(model.given(classes), z.repeat_interleave(c, 0))  # [n C, ...]
    originals = as_images(x.cpu().numpy().reshape(len(x), -1), model.config.data_shape)
    rows = [im for i in range(len(x))
            for im in (originals[i], *decoded[i * c:(i + 1) * c])]
    return save_grid(np.stack(rows), len(x), c + 1, path, scale)
