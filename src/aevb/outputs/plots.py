"""The paper's pictures as PNG files: manifolds (Fig. 4), samples (Fig. 5), curves (Fig. 2),
reconstructions and the latent scatter.

Image grids are written pixel for pixel with Pillow (each data pixel becomes a `scale` x `scale`
block), so their size is known exactly; charts use matplotlib's object API without pyplot, so
nothing global is touched.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy.stats import norm

from .. import files
from ..errors import AevbError
from ..rundir import integrity, names


def image_shape(data_shape: Sequence[int]) -> tuple[int, ...]:
    """How to show one data point: (H, W) images as they are, (3, H, W) colour images as
    (H, W, 3), flat vectors as a square or a row."""
    if len(data_shape) == 2:
        return int(data_shape[0]), int(data_shape[1])
    if len(data_shape) == 3 and data_shape[0] in (1, 3):
        c, h, w = (int(s) for s in data_shape)
        return (h, w) if c == 1 else (h, w, 3)
    d = int(np.prod(data_shape))
    side = math.isqrt(d)
    return (side, side) if side * side == d else (1, d)


def as_images(flat: np.ndarray, data_shape: Sequence[int]) -> np.ndarray:
    """Data points [n, D] as pictures: [n, H, W], or [n, H, W, 3] for colour (channels last)."""
    shape = image_shape(data_shape)
    if len(shape) == 3:  # (3, H, W) data, shown channels last
        return flat.reshape(len(flat), 3, *shape[:2]).transpose(0, 2, 3, 1)
    return flat.reshape(len(flat), *shape)


def save_grid(images: np.ndarray, rows: int, cols: int, path, scale: int | None = None,
              pad: int = 1) -> Path:
    """Tile images [rows * cols, H, W] (or [.., H, W, 3] in colour) with values in [0, 1]
    into one greyscale (or RGB) PNG.

    Size: (cols * (W + pad) + pad) * scale wide, (rows * (H + pad) + pad) * scale high; the
    default scale shows every tile about 56 pixels across (2 for MNIST, 7 for 8x8 digits).
    """
    from PIL import Image

    n, h, w = images.shape[:3]
    scale = scale or max(1, round(56 / max(h, w)))
    canvas = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, *images.shape[3:]),
                     dtype=np.float32)
    for i in range(min(n, rows * cols)):
        r, c = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top:top + h, left:left + w] = images[i]
    pixels = (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB" if pixels.ndim == 3 else "L").save(buffer, format="PNG")
    return _write(path, buffer.getvalue())


def _write(path, data: bytes):
    """The PNG to `path`: a binary file object (the caller decides where it goes), a figure
    of a run directory (replaced atomically and recorded in its manifest), or a file
    elsewhere (replaced atomically: the figures `aevb reproduce` redraws)."""
    if hasattr(path, "write"):
        path.write(data)
        return path
    path = Path(path)
    if integrity.has_manifest(path.parent):
        if path.name not in names.FIGURES:  # no other file of a run is replaced by a picture
            raise AevbError(f"{path} is inside a run directory, whose figures are "
                            f"{', '.join(names.FIGURES)}; choose a path outside it")
        integrity.write(path.parent, {path.name: data})
    else:
        files.atomic_write(path, data)
    return path


def _means(model, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        mean = model.decode(z.to(next(model.parameters()).device)).mean
    return as_images(mean.float().cpu().numpy(), model.config.data_shape)


def manifold(model, path, n: int = 20, dims: tuple[int, int] = (0, 1),
             scale: int | None = None) -> Path:
    """Decoder means over an n x n grid of z (Figure 4).

    The grid is the unit square's midpoints (i + 1/2) / n mapped through the inverse Gaussian
    CDF, so equal areas of the grid carry equal prior mass. With more than two latent
    dimensions, `dims` are varied and the others held at 0; with one, a single row.
    """
    j = model.config.latent_dim
    d0, d1 = dims
    if not (0 <= d0 < j and (j == 1 or (0 <= d1 < j and d0 != d1))):
        raise AevbError(f"manifold dimensions {dims} do not fit a {j}-dimensional latent space")
    coords = torch.tensor(norm.ppf((np.arange(n) + 0.5) / n), dtype=torch.float32)
    if j == 1:
        return save_grid(_means(model, coords[:, None]), 1, n, path, scale)
    z = torch.zeros(n * n, j)
    # Rows run from high to low z_d1, so "up" in the picture is up in latent space.
    z[:, d1] = coords.flip(0).repeat_interleave(n)
    z[:, d0] = coords.repeat(n)
    return save_grid(_means(model, z), n, n, path, scale)


def prior_draws(model, n: int, seed: int = 0) -> torch.Tensor:
    """n draws z ~ p(z) [n, J] of the model's own prior (N(0, I), a mixture, a VampPrior, or
    p(z2) p(z1|z2) for two stochastic layers), on the CPU, reproducible by seed."""
    prior = model.p_z
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        return prior.sample(n, gen).cpu()


def samples(model, path, n: int = 100, seed: int = 0, scale: int | None = None) -> Path:
    """Decoder means for n draws z ~ p(z) (Figure 5), in a near-square grid."""
    z = prior_draws(model, n, seed)
    cols = math.ceil(math.sqrt(n))
    return save_grid(_means(model, z), math.ceil(n / cols), cols, path, scale)


def theta_draws(model, path, draws: int = 7, n: int = 10, seed: int = 0,
                scale: int | None = None) -> Path:
    """Decoder means for the same n draws z ~ p(z) (columns) under the posterior mean of
    theta (top row) and under `draws` draws theta ~ q_phi(theta) (rows below), for a model
    with a posterior over theta (full-vb): where the rows differ, the model is unsure of its
    decoder."""
    from ..full_vb import UnderTheta

    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.config.latent_dim, generator=gen)  # N(0, I): full-vb's only prior
    rows = [_means(model, z)]
    posterior = model.theta_posterior
    with torch.no_grad():
        for _ in range(draws):
            zeta = [t.to(s.device) for t, s in zip(posterior.noise(gen), posterior.log_std)]
            rows.append(_means(UnderTheta(model, posterior.draw(model.decoder, zeta)), z))
    return save_grid(np.concatenate(rows), draws + 1, n, path, scale)


def reconstructions(model, x: torch.Tensor, path, n: int = 10, scale: int | None = None) -> Path:
    """Top row: data points x; bottom row: decoder means at z = mean of q_phi(z|x)."""
    x = x[:n]
    with torch.no_grad():
        z = model.encode(x.to(next(model.parameters()).device)).mean
    both = np.concatenate([as_images(x.cpu().numpy().reshape(len(x), -1),
                                     model.config.data_shape), _means(model, z)])
    return save_grid(both, 2, len(x), path, scale)


def latent_means(model, x: torch.Tensor, batch: int = 2000) -> np.ndarray:
    with torch.no_grad():
        device = next(model.parameters()).device
        return torch.cat([model.encode(x[i:i + batch].to(device)).mean.cpu()
                          for i in range(0, len(x), batch)]).numpy()


def aggregate_posterior(model, x: torch.Tensor, path, seed: int = 0, batch: int = 2000,
                        size=(6.0, 6.0), dpi: int = 100) -> Path:
    """One draw z ~ q_phi(z|x) for every row of x (together, draws of the aggregate posterior
    q(z) = (1/N) sum_n q_phi(z|x_n)) beside as many draws z ~ p(z), projected on the
    aggregate's first two principal directions (the plane of z1, z2 for J = 2). Where prior
    mass lies outside the data's cloud, the decoder is asked to draw from places no data point
    uses: the KL term pays for the mismatch (section 8 of docs/guide.md)."""
    from ..maths.distributions import q_sample

    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    with torch.no_grad():
        parts = []
        for i in range(0, len(x), batch):
            q = model.encode(x[i:i + batch].to(device))
            eps = torch.randn(1, len(x[i:i + batch]), model.config.latent_dim, generator=gen)
            parts.append(q_sample(q, eps.to(device))[0].cpu())  # [n, J]
    zq = torch.cat(parts).numpy()
    zp = prior_draws(model, len(zq), seed).numpy()
    if zq.shape[1] > 2:
        _, _, vt = np.linalg.svd(zq - zq.mean(0), full_matrices=False)
        basis, labels = vt[:2].T, ("PC 1 of q(z)", "PC 2 of q(z)")
        if basis.shape[1] < 2:  # fewer draws than two components (a test set of one point)
            basis = np.concatenate([basis, np.zeros((len(basis), 2 - basis.shape[1]))], 1)
    else:
        basis, labels = np.eye(zq.shape[1], 2), ("z1", "z2")
    fig, ax = _figure(size, dpi)
    for z, colour, name in ((zp, "C0", "prior p(z)"), (zq, "C3", "aggregate posterior q(z)")):
        ax.scatter(*(z @ basis).T, s=2, alpha=0.35, c=colour, label=name)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.legend(markerscale=5, fontsize=8)
    ax.set_title("draws of the prior and of the aggregate posterior")
    return _save(fig, path, dpi)


def pseudo_inputs(model, path, n: int = 100, scale: int | None = None) -> Path:
    """The first n of a VampPrior's pseudo-inputs u_k as images (aevb.priors.vamp)."""
    with torch.no_grad():
        u = model.p_z.points()[:n].cpu().numpy()
    cols = math.ceil(math.sqrt(len(u)))
    return save_grid(as_images(u, model.config.data_shape), math.ceil(len(u) / cols), cols,
                     path, scale)


def latent_scatter(model, x: torch.Tensor, path, labels=None, size=(6.0, 6.0),
                   dpi: int = 100) -> Path:
    """Means of q_phi(z|x) for every row of x, coloured by label; PCA to 2-D beyond two dims."""
    mu = latent_means(model, x)
    title = "latent means"
    if mu.shape[1] > 2:
        centred = mu - mu.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        mu, title = centred @ vt[:2].T, "latent means, first two principal components"
        if mu.shape[1] < 2:  # fewer points than two components (a test set of one point)
            mu = np.concatenate([mu, np.zeros((len(mu), 2 - mu.shape[1]))], 1)
    elif mu.shape[1] == 1:
        mu = np.concatenate([mu, np.zeros_like(mu)], 1)
    fig, ax = _figure(size, dpi)
    colours = None if labels is None else np.asarray(labels)
    points = ax.scatter(mu[:, 0], mu[:, 1], c=colours, s=3, alpha=0.7,
                        cmap="tab10" if colours is not None else None)
    if colours is not None:
        fig.colorbar(points, ax=ax, label="label")
    ax.set_title(title)
    ax.set_xlabel("z1" if title == "latent means" else "PC 1")
    ax.set_ylabel("z2" if title == "latent means" else "PC 2")
    return _save(fig, path, dpi)


def curves(runs: Sequence[tuple[str, list[dict]]], path, size=(8.0, 5.0), dpi: int = 100) -> Path:
    """Lower bound per data point against training samples evaluated (Figure 2's layout).

    runs: (label, metrics records) pairs; train dashed, test solid, log x-axis.
    """
    return panel_curves([("", runs)], path, size=size, dpi=dpi)


_COLOURS = {"AEVB": "C3", "Wake-Sleep": "C0", "MCEM": "C2"}


def panel_curves(panels: Sequence[tuple[str, Sequence[tuple[str, list[dict]]]]], path,
                 key: str = "elbo", log_x: bool = True,
                 ylabel: str = "lower bound per data point (nats)", size=None,
                 dpi: int = 100) -> Path:
    """One panel per (title, [(label, metrics records)]): the train (dashed) and test (solid)
    value of `key` ("elbo" or "log_likelihood") against training samples evaluated. Figures
    2 and 3 of the paper; size defaults to 3.2 x 3.6 inches per panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size or (3.2 * len(panels), 3.6), dpi=dpi)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, runs) in zip(axes, panels):
        values = []
        for i, (label, records) in enumerate(runs):
            rec = [r for r in records if r.get(f"test_{key}") is not None
                   and (r["samples"] > 0 or not log_x)]
            s = np.array([r["samples"] for r in rec], dtype=float) / (1 if log_x else 1e6)
            colour = _COLOURS.get(label, f"C{i % 10}")
            for split, style in (("train", "--"), ("test", "-")):
                v = [r[f"{split}_{key}"] for r in rec]
                values += v
                if v:
                    ax.plot(s, v, style, color=colour, label=f"{label} {split}")
        if values:  # the first evaluations lie far below; show where the runs end up
            lo, hi = np.percentile(values, 15), max(values)
            ax.set_ylim(lo - 0.05 * (hi - lo + 1), hi + 0.05 * (hi - lo + 1))
        if log_x:
            ax.set_xscale("log")
        if title:
            ax.set_title(title, fontsize=10)
        ax.set_xlabel("# training samples evaluated" + ("" if log_x else " (millions)"),
                      fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(ylabel, fontsize=9)
    axes[-1].legend(fontsize=7)
    return _save(fig, path, dpi)


def _figure(size, dpi):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi)
    return fig, fig.add_subplot()


def _save(fig, path, dpi) -> Path:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")  # no bbox="tight": the pixel size stays size * dpi
    return _write(path, buffer.getvalue())
