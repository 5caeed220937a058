"""M1's latent features as the data of M2: M1 + M2 (Kingma, Rezende, Mohamed & Welling 2014,
section 3.2.3).

M1 is a VAE trained on x without labels; its recognition model q_phi(z1|x) = N(mu(x),
diag(sigma^2(x))) maps every data point to the mean mu(x) [J1], a representation in which the
classes lie further apart than in pixel space. M1 + M2 trains M2 (`aevb.labelled`, a classifier
q_phi(y|z1) and p_theta(z1|y, z2)) on those means instead of on x: `--features RUN` names M1's
run directory. The means are real numbers of any range, so M2's likelihood is the `normal` head
(an unbounded mean and a learned variance per value).

M1's config and weights are copied into the new run (`FOLDER`), so the run keeps what its data
came from: resuming, evaluating and sampling it read that copy, and pictures of x are M1's
decoder means p_theta(x|z1) at M2's draws of z1 (`ThroughM1`).
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import torch

from .errors import AevbError
from .rundir.names import FEATURES as FOLDER  # in an M1 + M2 run: M1's config and weights
from .rundir.names import FEATURES_PARTIAL


def source(features: str, run_dir=None) -> Path:
    """Where M1 is read from: the run's own copy where it has one, else the directory given."""
    if run_dir is not None and (Path(run_dir) / FOLDER).is_dir():
        return Path(run_dir) / FOLDER
    return Path(features)


def load_m1(path):
    """M1 from a run directory, refused in one line where its features are not one diagonal
    Gaussian's means of x."""
    from .rundir import names
    from .rundir.checkpoint import load

    path = Path(path)
    if not (path / names.CONFIG).is_file() or not (path / names.WEIGHTS).is_file():
        raise AevbError(f"features {path}: not a trained run directory (it needs "
                        f"{names.CONFIG} and {names.WEIGHTS})")
    from .networks.heads import posterior_class

    m1 = load(path)
    c = m1.config
    why = ("it conditions on a label (M1 is trained without labels)" if c.classes else
           "it has two stochastic layers" if c.top_latent_dim else
           f"its posterior is {c.posterior}, a flow whose mean has no closed form"
           if not posterior_class(c.posterior).exports_parameters else None)
    if why:
        raise AevbError(f"features {path}: M1 must be a VAE with one diagonal Gaussian q(z|x); "
                        f"{why}")
    return m1


@torch.no_grad()
def encoder_means(m1, x: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    """mu(x) of M1's q_phi(z1|x) for x [N, D] (in [0, 1], as M1 reads grey levels): [N, J1]
    float32, in chunks of `batch` rows."""
    device = next(m1.parameters()).device
    out = [m1.encode(x[i:i + batch].to(device)).mean.float().cpu()
           for i in range(0, len(x), batch)]
    return torch.cat(out) if out else torch.zeros(0, m1.config.latent_dim)


def through_m1(data, m1, where):
    """The Dataset `data` with x replaced by M1's means mu(x) (labels kept): shape (J1,). M1
    read from the run directory `where`."""
    if m1.config.data_dim != data.train.shape[1]:
        from .rundir.checkpoint import read_config

        trained_on = read_config(where)["config"].get("dataset")
        raise AevbError(f"features {where}: M1 models data of {m1.config.data_dim} values "
                        f"({trained_on}), {data.name} has {data.train.shape[1]}: give "
                        f"--dataset {trained_on}")
    return dataclasses.replace(data, name=f"{data.name}, M1 features", train=encoder_means(
        m1, data.train), test=encoder_means(m1, data.test), shape=(m1.config.latent_dim,))


def load_data(config, run_dir=None):
    """The dataset a TrainConfig (or a run's config.json section) trains on: its dataset, and
    for M1 + M2 (config features) M1's means of it."""
    from .data import load_for_config

    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k)
    data = load_for_config(config)
    features = get("features")
    if not features:
        return data
    path = source(features, run_dir)
    return through_m1(data, load_m1(path), path)


def keep(features: str, run_dir) -> None:
    """Copy M1's config, weights and manifest into run_dir/FOLDER (once: a resume keeps it)."""
    from .rundir import names

    target = Path(run_dir) / FOLDER
    if target.is_dir():
        return
    partial = Path(run_dir) / FEATURES_PARTIAL
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for name in (names.CONFIG, names.WEIGHTS, names.MANIFEST):
        if (Path(features) / name).is_file():
            shutil.copy2(Path(features) / name, partial / name)
    partial.rename(target)  # whole or not at all


def features_of(run_dir) -> str | None:
    """The M1 run directory an M1 + M2 run was given (`--features`), or None for any other."""
    from .rundir.checkpoint import read_config

    return read_config(run_dir)["config"].get("features")


def of_run(run_dir):
    """M1 of an M1 + M2 run directory, or None for any other run."""
    features = features_of(run_dir)
    return load_m1(source(features, run_dir)) if features else None


class ThroughM1:
    """An M1 + M2 model seen as a model of x, for pictures: decode(z2) gives M1's decoder at
    the mean of M2's p_theta(z1|z2) (`given(y)` likewise), so samples, class samples and
    analogies show images. x itself is not modelled (M2's densities are of z1)."""

    def __init__(self, m2, m1, y: torch.Tensor | None = None):
        self.m2, self.m1, self._y = m2, m1, y
        self.config = dataclasses.replace(m2.config, data_shape=m1.config.data_shape)
        self.p_z = m2.p_z

    def given(self, y: torch.Tensor) -> "ThroughM1":
        return ThroughM1(self.m2, self.m1, y)

    def prior(self):
        return self.m2.prior()

    def parameters(self):
        return self.m2.parameters()

    def _m2(self):
        return self.m2 if self._y is None else self.m2.given(self._y)

    def encode(self, x: torch.Tensor):
        """M2's q(z2|z1 (, y)) at M1's means z1 = mu(x) of images x [N, D]."""
        return self._m2().encode(encoder_means(self.m1, x).to(x.device))

    def decode(self, z: torch.Tensor):
        """M1's p_theta(x|z1) at the mean z1 of M2's p_theta(z1|(y,) z2), z [..., N, J2]."""
        return self.m1.decode(self._m2().decode(z).mean)


def pictured(run_dir, model):
    """(the model, its data) as pictures show them: an M1 + M2 model through M1 with the
    images of its dataset (`ThroughM1`); any other model as it is, with None."""
    from .data import load_for_config
    from .rundir.checkpoint import read_config

    m1 = of_run(run_dir)
    if m1 is None:
        return model, None
    return ThroughM1(model, m1), load_for_config(read_config(run_dir)["config"])
