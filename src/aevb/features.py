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
def encoder_moments(m1, x: torch.Tensor, batch: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu(x), sigma(x)) of M1's q_phi(z1|x) for x [N, D] (in [0, 1], as M1 reads grey
    levels): two [N, J1] float32, in chunks of `batch` rows."""
    device = next(m1.parameters()).device
    means, stds = [], []
    for i in range(0, len(x), batch):
        q = m1.encode(x[i:i + batch].to(device))
        means.append(q.mean.float().cpu())
        stds.append(q.stddev.float().cpu())
    if not means:
        empty = torch.zeros(0, m1.config.latent_dim)
        return empty, empty
    return torch.cat(means), torch.cat(stds)


def encoder_means(m1, x: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    """mu(x) of M1's q_phi(z1|x) for x [N, D]: [N, J1] float32."""
    return encoder_moments(m1, x, batch)[0]


def active_units(means: torch.Tensor, where) -> torch.Tensor:
    """The units j of z1 that M1 uses, from its means mu(x) [N, J1] of the training set: those
    with activity Var_x(mu_j(x)) > 0.01 (Burda et al.'s active units, `aevb evaluate`; the
    rule by which Kingma et al.'s code drops the rest), as sorted indices [J1'] int64."""
    from .evaluation.latents import ACTIVE_THRESHOLD

    kept = torch.nonzero(means.double().var(0) > ACTIVE_THRESHOLD).flatten()
    if len(kept) == 0:
        raise AevbError(f"features {where}: M1 has no active unit (every posterior mean is "
                        "constant): train it longer or leave active-features off")
    return kept


@dataclasses.dataclass(frozen=True)
class M1:
    """M1 as M2 reads it: the trained VAE `model` and the units of z1 kept as M2's data
    (`units` [J1'] indices, or None: all J1)."""

    model: object
    units: torch.Tensor | None = None

    @property
    def config(self):
        return self.model.config

    @property
    def dim(self) -> int:
        """J1', the size of M2's data."""
        return self.config.latent_dim if self.units is None else len(self.units)

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu(x), sigma(x)) of the kept units for images x [N, D]: two [N, J1']."""
        mean, std = encoder_moments(self.model, x)
        return (mean, std) if self.units is None else (mean[:, self.units], std[:, self.units])

    def means(self, x: torch.Tensor) -> torch.Tensor:
        """mu(x) of the kept units for images x [N, D]: [N, J1']."""
        return self.moments(x)[0]

    def full(self, z1: torch.Tensor) -> torch.Tensor:
        """z1 of the kept units [..., J1'] as M1's [..., J1], the dropped units at their prior
        mean 0 (they do not move with x)."""
        if self.units is None:
            return z1
        out = z1.new_zeros(*z1.shape[:-1], self.config.latent_dim)
        out[..., self.units.to(z1.device)] = z1
        return out


def _check_size(m1, data, where) -> None:
    if m1.config.data_dim != data.train.shape[1]:
        from .rundir.checkpoint import read_config

        trained_on = read_config(where)["config"].get("dataset")
        raise AevbError(f"features {where}: M1 models data of {m1.config.data_dim} values "
                        f"({trained_on}), {data.name} has {data.train.shape[1]}: give "
                        f"--dataset {trained_on}")


def through_m1(data, m1, where, draws: bool = False, active: bool = False):
    """The Dataset `data` with x replaced by M1's means mu(x) (labels kept): shape (J1,), or
    (J1',) of the active units where `active`; with `draws`, training minibatches are draws
    z1 ~ q(z1|x) (Dataset.train_spread = sigma(x)). M1 read from the run directory `where`."""
    _check_size(m1, data, where)
    mean, std = encoder_moments(m1, data.train)
    units = active_units(mean, where) if active else None
    if units is not None:
        mean, std = mean[:, units], std[:, units]
    return dataclasses.replace(
        data, name=f"{data.name}, M1 features", train=mean, test=M1(m1, units).means(data.test),
        shape=(mean.shape[1],), train_spread=std if draws else None)


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
    return through_m1(data, load_m1(path), path, bool(get("feature_draws")),
                      bool(get("active_features")))


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


def of_run(run_dir) -> M1 | None:
    """M1 of an M1 + M2 run directory as its M2 reads it (with the units it keeps), or None
    for any other run."""
    from .data import load_for_config
    from .rundir.checkpoint import read_config

    features = features_of(run_dir)
    if not features:
        return None
    path = source(features, run_dir)
    m1 = load_m1(path)
    config = read_config(run_dir)["config"]
    if not config.get("active_features"):
        return M1(m1)
    data = load_for_config(config)
    _check_size(m1, data, path)
    return M1(m1, active_units(encoder_means(m1, data.train), path))


class ThroughM1:
    """An M1 + M2 model seen as a model of x, for pictures: decode(z2) gives M1's decoder at
    the mean of M2's p_theta(z1|z2) (`given(y)` likewise), so samples, class samples and
    analogies show images. x itself is not modelled (M2's densities are of z1)."""

    def __init__(self, m2, m1: M1, y: torch.Tensor | None = None):
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
        return self._m2().encode(self.m1.means(x).to(x.device))

    def decode(self, z: torch.Tensor):
        """M1's p_theta(x|z1) at the mean z1 of M2's p_theta(z1|(y,) z2), z [..., N, J2]."""
        return self.m1.model.decode(self.m1.full(self._m2().decode(z).mean))


def pictured(run_dir, model):
    """(the model, its data) as pictures show them: an M1 + M2 model through M1 with the
    images of its dataset (`ThroughM1`); any other model as it is, with None."""
    from .data import load_for_config
    from .rundir.checkpoint import read_config

    m1 = of_run(run_dir)
    if m1 is None:
        return model, None
    return ThroughM1(model, m1), load_for_config(read_config(run_dir)["config"])
