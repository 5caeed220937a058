"""`aevb explore RUN_DIR`: one self-contained web page per trained model, to play with it.

The page (the template explorer_page.html beside this file) holds the model's own weights as
base64 float32 and runs the encoder and decoder in JavaScript, so it opens from disk with no
server and no network. It shows the test set's encoder means on a latent plane (principal
axes when N_z > 2, the other coordinates on sliders), decodes the z under the pointer, encodes
a drawn or dropped image with its 2-sigma ellipse, its bound and log p(x) by importance
sampling, interpolates between two points and samples from the prior.

The MLP networks (any depth and activation, Bernoulli or Gaussian decoder, point-estimate or
full-vb posterior-mean weights) run in plain JavaScript; convolutional ones are refused. A
model with a label y (a conditional VAE, M2) gets a selector for y, which both networks read
beside x and z, and M2's classifier q(y|x) names the class of a drawn image.
"""
from __future__ import annotations

import base64
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import AevbError
from ..rundir import names

PLACEHOLDER = "/*__AEVB_MODEL__*/null"
GALLERY = 24  # test images carried by the page, to pick and interpolate between


def _b64(array: np.ndarray, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).astype(
        np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def _layers(sequential) -> list[dict]:
    """Each Linear of an `aevb.networks.mlp.mlp` as {rows, cols, w, b} (w row-major [out, in])."""
    out = []
    for layer in sequential:
        if isinstance(layer, torch.nn.Linear):
            w = layer.weight.detach().cpu().float().numpy()
            out.append({"rows": w.shape[0], "cols": w.shape[1], "w": _b64(w, np.float32),
                        "b": _b64(layer.bias.detach().cpu().float().numpy(), np.float32)})
    return out


def unsupported_reason(model) -> str | None:
    """Why the page cannot run this model, or None where it can."""
    from ..networks import NETWORKS
    from ..networks.heads import posterior_class
    from ..priors.standard_normal import StandardNormalPrior

    c = model.config
    if not NETWORKS[c.network].runs_in_browser:
        return ("the explorer runs MLP networks in the browser; this model has "
                f"{c.network} networks, which need a browser runtime for "
                "convolutions that the page does not bundle (use aevb export "
                "--format onnx for such models)")
    if not posterior_class(c.posterior).exports_parameters:
        return (f"the explorer's page computes with a diagonal Gaussian q(z|x); this model's "
                f"posterior is {c.posterior}, a flow the page does not run")
    if c.top_latent_dim:
        return ("the explorer's page computes with one stochastic layer; this model has two "
                "(use aevb evaluate and aevb sample for it)")
    if type(model.p_z) is not StandardNormalPrior:
        return (f"the explorer's page computes with the N(0, I) prior; this model has the "
                f"{c.prior} prior (use aevb export --format onnx for such models)")
    return None


def run_unsupported_reason(run_dir, model) -> str | None:
    """`unsupported_reason` for a run's model, and M1 + M2 runs (whose data are M1's means,
    not images) refused too."""
    from ..features import features_of

    if features_of(run_dir):
        return ("this model is M2 on M1's features, not on images; explore M1 (its "
                "features/ folder) or use aevb sample --label for this one")
    return unsupported_reason(model)


def page_model(model, test: torch.Tensor, labels, title: str) -> dict:
    """What the page needs, as JSON: config, weights, the test set's means and principal axes,
    and GALLERY test images. test: the run's evaluation test set [N, *data_shape]. A model
    with a label encodes each test image with its own label (`labels`), and the page has a
    label selector (and the classifier q(y|x) where the model has one)."""
    c = model.config
    refused = unsupported_reason(model)
    if refused:
        raise AevbError(refused)
    if c.classes and labels is None:
        raise AevbError("this model's encoder reads a label with each image, and the test set "
                        "has none")
    with torch.no_grad():
        flat = test.reshape(len(test), -1).float()
        y = torch.as_tensor(np.asarray(labels)[:len(flat)]) if c.classes else None
        means = torch.cat([(model.given(y[i:i + 2000]) if c.classes else model)
                           .encode(flat[i:i + 2000]).mean
                           for i in range(0, len(flat), 2000)]).double().numpy()  # [N, J]
    if c.latent_dim <= 2:  # the plane is z itself
        centre, axes = np.zeros(c.latent_dim), np.eye(c.latent_dim)
    else:  # principal axes of the means: the plane shows the first two, sliders the others
        centre = means.mean(0)
        axes = np.linalg.svd(means - centre, full_matrices=True)[2]  # rows: directions [J, J]
    coords = (means - centre) @ axes.T  # [N, J]
    pick = np.linspace(0, len(test) - 1, min(GALLERY, len(test))).round().astype(int)
    return {
        "title": title,
        "data_shape": list(c.data_shape), "latent_dim": c.latent_dim,
        "likelihood": c.likelihood, "activation": c.activation,
        "encoder": _layers(model.encoder.net), "decoder": _layers(model.decoder.net),
        "classes": c.classes, "classifier": _layers(model.classifier.net)
        if c.classes and model.classifier is not None else None,
        "test_means": _b64(means, np.float32), "n_test": len(means),
        "labels": None if labels is None else _b64(np.asarray(labels)[:len(means)], np.int32),
        "centre": centre.tolist(), "axes": axes.tolist(),
        "coord_std": (coords.std(0) if len(coords) > 1 else np.ones(c.latent_dim)).tolist(),
        "gallery": _b64(np.clip(flat[pick].numpy() * 255, 0, 255).round(), np.uint8),
        "gallery_index": pick.tolist(),
    }


def render(page: dict) -> str:
    """The explorer page for `page_model`'s output: one HTML file."""
    template = resources.files("aevb.outputs").joinpath("explorer_page.html").read_text()
    # "</" would end the script element early; JSON escapes it harmlessly.
    return template.replace(PLACEHOLDER, json.dumps(page).replace("</", "<\\/"))


def write_explorer(run_dir, out=None, data=None) -> Path:
    """RUN_DIR/explorer.html (or `out`, which must not exist yet) for the run's model;
    `data`: the run's dataset when the caller has it loaded."""
    from ..rundir import integrity
    from ..rundir.checkpoint import load, read_config
    from ..rundir.evaluations import dataset_of_run, test_set_of_run
    from .report import run_label

    run_dir = Path(run_dir)
    if out is not None and os.path.lexists(out):  # before the work
        raise AevbError(f"{out} exists; choose another file (nothing is overwritten)")
    info = read_config(run_dir)
    model = load(run_dir)
    refused = run_unsupported_reason(run_dir, model)
    if refused:  # before the work
        raise AevbError(refused)
    data = data if data is not None else dataset_of_run(run_dir)
    test = test_set_of_run(run_dir, data)
    html = render(page_model(model, test, data.test_labels, run_label(info)))
    if out is None:
        integrity.write(run_dir, {names.EXPLORER: html.encode()})
        return run_dir / names.EXPLORER
    from ..files import write_new

    return write_new(out, html.encode())
