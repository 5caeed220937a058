"""A trained model as standalone programs, for use without aevb (or Python):

- `encoder`: x [B, D] -> mean [B, J], log_var [B, J], the parameters of q_phi(z|x);
- `decoder`: z [B, J] -> the parameters of p_theta(x|z): logits [B, D] (Bernoulli), or
  mean [B, D] and log_var [B, D] (Gaussian);
- `scorer`: x [B, D], eps [K, B, J] -> log_px [B], the importance-sampled log p_theta(x) in
  nats with K = eps.shape[0] fixed at export and the standard normal noise passed in (the
  same value `objectives.iwae_bound` gives for that noise).

A model with a label (`aevb.labelled`) takes y as one-hot rows [B, C] beside x and z: encoder
(x, y), decoder (z, y); its scorer gives log p(x|y) from (x, y, eps) for a conditional VAE, or
M2's log p(x) = log sum_y p(y) p(x|y) from (x, eps), the same K draws for every class; M2
adds `classifier`: x [B, D] -> logits [B, C] of q_phi(y|x).

B, the batch, is free in every program; D = prod(data_shape) values a data point (flattened
row-major, as `aevb evaluate` reads images), J the latent dimension. Formats: ONNX (for ONNX
Runtime in C++, C#, Java or the browser; needs the `export` extra) and `pt2`, a
`torch.export` program (`torch.export.load(path).module()`). `export.json` beside the
programs records the names, shapes, K and the model's settings.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .. import files
from ..errors import AevbError
from ..maths.objectives import iwae_bound
from ..networks.heads import posterior_class

FORMATS = ("onnx", "pt2")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2"}


def _parameters(p) -> dict[str, torch.Tensor]:
    """The named parameters of a decoder distribution p_theta(x|z), batch [...], event [D]:
    logits (Bernoulli), or mean and log_var (Gaussian)."""
    return p.outputs()


class EncoderProgram(nn.Module):
    """x [B, D] -> (mean, log_var) [B, J] each."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        q = self.model.encode(x).base_dist
        return q.loc, 2.0 * torch.log(q.scale)


class DecoderProgram(nn.Module):
    """z [B, J] -> logits [B, D], or (mean, log_var) [B, D] each."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor):
        return tuple(_parameters(self.model.decode(z)).values())


class ScorerProgram(nn.Module):
    """(x [B, D], eps [K, B, J]) -> log_px [B], nats."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, eps: torch.Tensor):
        return iwae_bound(self.model, x, eps)


class LabelledEncoderProgram(nn.Module):
    """x [B, D], y [B, C] (one-hot) -> (mean, log_var) [B, J] of q_phi(z|x, y)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        q = self.model.given(y).encode(x).base_dist
        return q.loc, 2.0 * torch.log(q.scale)


class LabelledDecoderProgram(nn.Module):
    """z [B, J], y [B, C] (one-hot) -> the parameters of p_theta(x|y, z)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, y: torch.Tensor):
        return tuple(_parameters(self.model.given(y).decode(z)).values())


class ConditionalScorerProgram(nn.Module):
    """(x [B, D], y [B, C] one-hot, eps [K, B, J]) -> log p(x|y) [B], nats."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor):
        return iwae_bound(self.model.given(y), x, eps)


class ClassifierProgram(nn.Module):
    """x [B, D] -> logits [B, C] of q_phi(y|x) (M2)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.classify(x).logits


def _programs(model) -> dict[str, nn.Module]:
    if not getattr(model.config, "classes", 0):
        return {"encoder": EncoderProgram(model), "decoder": DecoderProgram(model),
                "scorer": ScorerProgram(model)}
    programs = {"encoder": LabelledEncoderProgram(model),
                "decoder": LabelledDecoderProgram(model),
                "scorer": ConditionalScorerProgram(model)}
    if model.classifier is not None:
        programs["classifier"] = ClassifierProgram(model)
    return programs


def signatures(model, k: int) -> dict:
    """Each program's inputs and outputs: {program: {"inputs": {name: shape}, "outputs": ...}},
    shapes with "B" for the free batch size."""
    c = model.config
    d, j = c.data_dim, c.latent_dim
    with torch.no_grad():
        names = list(_parameters((model.given(torch.tensor(0)) if getattr(c, "classes", 0)
                                  else model).decode(torch.zeros(1, j))))
    classes = getattr(c, "classes", 0)
    if not classes:
        return {
            "encoder": {"inputs": {"x": ["B", d]},
                        "outputs": {"mean": ["B", j], "log_var": ["B", j]}},
            "decoder": {"inputs": {"z": ["B", j]}, "outputs": {n: ["B", d] for n in names}},
            "scorer": {"inputs": {"x": ["B", d], "eps": [k, "B", j]},
                       "outputs": {"log_px": ["B"]}},
        }
    y = {"y": ["B", classes]}  # one-hot rows
    sig = {
        "encoder": {"inputs": {"x": ["B", d], **y},
                    "outputs": {"mean": ["B", j], "log_var": ["B", j]}},
        "decoder": {"inputs": {"z": ["B", j], **y}, "outputs": {n: ["B", d] for n in names}},
    }
    sig["scorer"] = {"inputs": {"x": ["B", d], **y, "eps": [k, "B", j]},
                     "outputs": {"log_px_given_y": ["B"]}}
    if model.classifier is not None:
        sig["classifier"] = {"inputs": {"x": ["B", d]}, "outputs": {"logits": ["B", classes]}}
    return sig


def _examples(model, k: int, sig: dict) -> dict:
    """Example inputs of each program, 3 data points, with the shapes of `sig`."""
    def example(name, shape):
        shape = [3 if s == "B" else s for s in shape]
        if name == "y":
            return torch.eye(shape[1])[torch.arange(3) % shape[1]]
        return torch.rand(*shape) if name == "x" else torch.randn(*shape)

    return {p: tuple(example(n, shape) for n, shape in v["inputs"].items())
            for p, v in sig.items()}


def export_model(model, out: Path, fmt: str, k: int = 1000) -> dict[str, Path]:
    """Write the three programs of `model` (in eval mode, on the CPU) to `out` in format `fmt`
    with K = k for the scorer; returns {program: path}. Files already in `out` are never
    overwritten."""
    if fmt not in FORMATS:
        raise AevbError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if k < 1:
        raise AevbError(f"importance samples must be at least 1, got {k}")
    posterior = getattr(model.config, "posterior", "gaussian")
    if not posterior_class(posterior).exports_parameters:
        raise AevbError(f"the {posterior} posterior is a flow: the encoder program gives "
                        "(mean, log_var) of a diagonal Gaussian, which does not describe it; "
                        "export supports models with the gaussian posterior")
    if getattr(model.config, "top_latent_dim", 0):
        raise AevbError("a model with two stochastic layers has no single (mean, log_var) "
                        "encoder or z -> x decoder program; export supports one layer")
    model = model.cpu().eval()
    out = Path(out)
    programs = _programs(model)
    paths = {name: out / f"{name}{SUFFIX[fmt]}" for name in programs}
    taken = [str(p) for p in [*paths.values(), out / "export.json"] if os.path.lexists(p)]
    if taken:
        raise AevbError(f"{taken[0]} exists; choose another --out (nothing is overwritten)")
    sig = signatures(model, k)
    examples = _examples(model, k, sig)
    # Every program is made in memory first, then each file is created whole (a temporary
    # file and a link), so a failure (a full disk) leaves nothing that blocks a retry.
    contents = {}
    for name, program in programs.items():
        batch = torch.export.Dim("B", min=1)
        dims = tuple({0: batch} if shape[0] == "B" else {1: batch}
                     for shape in sig[name]["inputs"].values())
        # (traced with autograd on: under no_grad the ONNX exporter failed to decompose the
        # decoder's graph)
        if fmt == "pt2":
            with _quiet():
                exported = torch.export.export(program, examples[name], dynamic_shapes=dims)
            buffer = io.BytesIO()
            torch.export.save(exported, buffer)
            contents[paths[name]] = buffer.getvalue()
        else:
            contents[paths[name]] = _onnx(program, examples[name], dims, sig[name])
    info = {"format": fmt, "importance_samples": k, "model": model.config.to_dict(),
            "programs": {n: {"file": paths[n].name, **sig[n]} for n in paths}}
    contents[out / "export.json"] = (json.dumps(info, indent=2) + "\n").encode()
    written = []
    try:
        for path, data in contents.items():
            written.append(files.write_new(path, data))
    except AevbError:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return paths


@contextmanager
def _quiet():
    """torch's exporters print progress and warnings of their own (a dozen lines for one
    ONNX export): the command's output is its own one line."""
    import logging
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "onnxscript")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _onnx(program, example, dims, sig) -> bytes:
    """The ONNX program of `program`, serialized."""
    try:
        import onnx  # noqa: F401 (torch's exporter needs it; say so in our words)
        import onnxscript  # noqa: F401
    except ImportError:
        raise AevbError("ONNX export needs the export extra: pip install \"aevb[export]\" "
                        "(onnx, onnxscript, onnxruntime)") from None
    with _quiet():
        onnx_program = torch.onnx.export(program, example, dynamo=True, dynamic_shapes=dims,
                                         input_names=list(sig["inputs"]),
                                         output_names=list(sig["outputs"]), verbose=False)
    return onnx_program.model_proto.SerializeToString()


def export_run(run_dir, fmt: str, out=None, k: int = 1000) -> dict[str, Path]:
    """`export_model` for the model of a run directory (verified as every read is), into
    `out` (default RUN_DIR/export-FORMAT)."""
    from ..rundir.checkpoint import load

    if fmt not in FORMATS:  # before reading anything
        raise AevbError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    from ..features import FOLDER, features_of

    if features_of(run_dir):
        raise AevbError(f"{run_dir} is M2 on M1's features: its programs would read M1's means, "
                        f"not images; export M1 ({Path(run_dir) / FOLDER}) for the images' "
                        "encoder and decoder (a chained M1 + M2 export is not built yet)")
    model = load(run_dir)
    return export_model(model, Path(out) if out else Path(run_dir) / f"export-{fmt}", fmt, k)
