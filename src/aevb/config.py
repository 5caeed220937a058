"""Training settings: one frozen dataclass, its defaults, and the paper's presets.

Every CLI flag of `aevb train` is a field here with the same name (dashes for underscores), and
the resolved config is written to config.json in every run directory.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields

from .algorithms import NAMES as ALGORITHMS
from .algorithms.settings import McemConfig, label_rules
from .errors import AevbError
from .fields import check_types
from .presets import PRESETS
from .priors import NAMES as PRIORS

ENGINES = ("auto", "native", "compiled", "eager")  # see aevb.compute.engine

# Training length when neither samples nor epochs is given.
DEFAULT_EPOCHS = 100.0
# The longest run: 2^50 samples (about 10^15, 300 years at 10^5 samples per second); sample
# counts stay exact in float64 and far from int64's end.
MAX_SAMPLES = 2**50
# Seeds are offset per process and purpose (seed + 1_000_003 * (rank + 1), ...) and must stay
# in the range of torch's 64-bit generator seeds.
MAX_SEED = 2**62


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "digits"  # a name from aevb.data.DATASETS, a .npy/.npz file or an image folder
    latent_dim: int = 20  # N_z, the dimension of z
    hidden: tuple[int, ...] = (500,)  # hidden layer sizes of encoder (decoder mirrors them)
    network: str = "mlp"  # mlp | conv (two strided convolutions each side, aevb.networks.conv)
    activation: str = "tanh"  # tanh (the paper's) | relu | softplus | elu
    prior: str = "standard-normal"  # p(z): standard-normal (the paper's) | mixture | vamp
    prior_components: int = 0  # K of the mixture (10) or VampPrior (500); 0: that default
    posterior: str = "gaussian"  # q(z|x): gaussian (the paper's) | iaf (inverse autoregressive flow)
    flow_steps: int = 0  # T, the IAF's steps; 0: its default (2)
    top_latent_dim: int = 0  # J2 of a second stochastic layer z2 (the last J2 of latent-dim)
    top_hidden: tuple[int, ...] = (100, 100)  # MLPs between z1 and z2 (aevb.hierarchy)
    conditional: bool = False  # condition q(z|x, y) and p(x|y, z) on the data's labels y (aevb.labelled)
    classifier: tuple[int, ...] | None = None  # hidden sizes of q(y|x): M2 (Kingma et al. 2014); none: no classifier
    labels: int | None = None  # keep N training labels, balanced over classes, the rest unlabelled; none: all
    classifier_weight: float = 0.1  # alpha / N of M2's classification term (the paper's 0.1)
    features: str | None = None  # M1 + M2: train on the means of q(z|x) of this run directory (M1)
    feature_draws: bool = False  # M1 + M2: each minibatch draws z1 ~ q(z1|x) instead of its mean
    active_features: bool = False  # M1 + M2: keep only M1's active units (Cov_x E_q[z_j] > 0.01)
    likelihood: str | None = None  # bernoulli | gaussian | normal (any range); None: from the data
    binarize: bool | None = None  # sample each binary batch from grey levels; None: from the data
    algorithm: str = "aevb"  # aevb (SGVB) | wake-sleep | mcem (baselines) | full-vb (appendix F)
    estimator: str = "B"  # A (eq. 6), B (eq. 7) or iwae (Burda et al., k = mc-samples)
    mc_samples: int = 1  # L, samples of z per data point per step (iwae: k)
    kl_weight: float = 1.0  # beta, the KL term's weight in estimator B (1: the bound)
    kl_warmup: int = 0  # samples over which the KL weight rises linearly from 0 to kl-weight
    engine: str = "auto"  # auto | native | compiled | eager: how the step runs (aevb.compute.engine)
    kernels: bool = True  # the native backend's C library (aevb.native) where it serves
    batch_size: int = 100  # M
    optimizer: str = "adagrad"  # adagrad | adam
    lr: float = 0.02  # global step size
    lr_schedule: str = "constant"  # constant | iwae (3^i epochs at lr 10^(-i/7)) | cosine (to 0)
    init_std: float = 0.01  # parameters drawn from N(0, init_std^2)
    weight_prior_std: float | None = 1.0  # N(0, s^2 I) prior on the weights (MAP; full-vb: alpha)
    posterior_init_std: float = 0.01  # full-vb: every sigma of q(theta) at the start
    samples: int | None = None  # training length in data points evaluated (paper's x-axis)
    epochs: float | None = None  # passes over the training set (neither: DEFAULT_EPOCHS)
    train_examples: int | None = None  # train on the first N training points only; None: all
    mcem: McemConfig = field(default_factory=McemConfig)  # MCEM's own settings (--mcem-*)
    eval_points: int = 20  # log-spaced evaluations of the train and test bound
    eval_examples: int = 10000  # training points used for the train bound (the first ones)
    eval_likelihood: int = 0  # first N points per split given log p(x) by appendix D at evals
    checkpoint_every: int = 100_000  # samples between checkpoints (also at every evaluation)
    test_fraction: float = 0.1  # held-out share for datasets without a fixed test set
    seed: int = 0  # seeds initialisation, data order, binarization, noise and the data split
    device: str = "auto"  # auto | cpu | cuda
    data_dir: str | None = None  # searched before $AEVB_DATA and ~/.cache/aevb
    download: bool = True  # fetch missing files of known datasets
    out: str | None = None  # run directory; None: runs/<date-time>-<dataset>-nz<N>

    def __post_init__(self):
        check_types(self)
        if not isinstance(self.mcem, McemConfig):
            raise AevbError(f"the mcem section must be an McemConfig, got {self.mcem!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "top_hidden", tuple(self.top_hidden))
        checks = [*_rules_of_sizes(self), *_rules_of_choices(self)]
        for ok, message in checks:
            if not ok:
                raise AevbError(message)
        from .algorithms import get

        refused = get(self.algorithm).check(self)  # the algorithm's own rules
        if refused:
            raise AevbError(refused)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        if not isinstance(values, dict):
            raise AevbError(f"the config must be a mapping of settings, got "
                            f"{type(values).__name__}")
        values = _sections(cls, values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AevbError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**values)


def _either(names: tuple[str, ...]) -> str:
    """"a, b or c"."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


def _networks() -> dict:
    from .networks import NETWORKS

    return NETWORKS


def _likelihoods() -> tuple[str, ...]:
    from .networks.heads import LIKELIHOODS

    return tuple(LIKELIHOODS)


def _posteriors() -> tuple[str, ...]:
    from .networks.heads import POSTERIORS

    return tuple(POSTERIORS)


def _network(name: str):
    """The network family `name` (aevb.networks.NETWORKS), or None."""
    return _networks().get(name)


def sections() -> dict[str, type]:
    """TrainConfig's nested sections: field name -> its dataclass (an algorithm's settings)."""
    return {f.name: f.default_factory for f in fields(TrainConfig)
            if f.default_factory is not dataclasses.MISSING}


def _sections(cls, values: dict) -> dict:
    """`values` with each nested section made its dataclass: from a mapping (config.json),
    from flat `SECTION_FIELD` keys (CLI flags, Python keywords, runs from before sections),
    or both (the flat keys win)."""
    values = dict(values)
    for name, section in sections().items():
        given = values.pop(name, None)
        if isinstance(given, section):
            given = dataclasses.asdict(given)
        if given is not None and not isinstance(given, dict):
            raise AevbError(f"the {name} section must be a mapping of settings, got {given!r}")
        merged = dict(given or {})
        own = {f.name for f in fields(section)}
        for key in [k for k in values if k.startswith(name + "_")]:
            merged[key[len(name) + 1:]] = values.pop(key)
        unknown = sorted(set(merged) - own)
        if unknown:
            raise AevbError(f"unknown {name} setting(s): {', '.join(unknown)}")
        values[name] = section(**merged)
    return values


def _rules_of_sizes(c: "TrainConfig") -> list[tuple[bool, str]]:
    """TrainConfig's rules on names, seeds, sizes and ranges: (holds, the message if
    not) per rule, in the order they are checked."""
    return [
        (c.dataset.strip() != "", "dataset must name a dataset, a file or a folder, "
         "got an empty name"),
        (0 <= c.seed < MAX_SEED, f"seed must lie in 0 .. 2^62 - 1, got {c.seed}"),
        (c.samples is None or c.samples <= MAX_SAMPLES,
         f"samples must be at most 2^50 (about 1.1e15), got {c.samples:.3g}"
         if c.samples is not None else ""),
        (c.epochs is None or c.epochs <= MAX_SAMPLES,
         f"epochs must be at most 2^50, got {c.epochs}"),
        (c.mc_samples <= MAX_SAMPLES and c.batch_size <= MAX_SAMPLES
         and c.latent_dim <= 2**31 and all(h <= 2**31 for h in c.hidden),
         "mc-samples, batch size, latent dimension and hidden sizes must be below 2^31"),
        (c.latent_dim >= 1, f"latent dimension must be at least 1, got {c.latent_dim}"),
        (0 <= c.top_latent_dim < c.latent_dim,
         f"top-latent-dim must be at least 0 and below latent-dim {c.latent_dim} (z1 keeps the "
         f"rest), got {c.top_latent_dim}"),
        (all(1 <= h <= 2**31 for h in c.top_hidden),
         f"top hidden sizes must be positive integers, got {list(c.top_hidden)}"),
        ((len(c.hidden) >= 1 or not getattr(_network(c.network), "needs_hidden", True))
         and all(h >= 1 for h in c.hidden),
         f"hidden sizes must be positive integers, got {list(c.hidden)}"),
        (c.likelihood is None or c.likelihood in _likelihoods(),
         f"likelihood must be {_either(_likelihoods())}, got {c.likelihood!r}"),
        (c.algorithm in ALGORITHMS,
         f"algorithm must be {_either(ALGORITHMS)}, got {c.algorithm!r}"),
        (math.isfinite(c.posterior_init_std) and c.posterior_init_std > 0,
         f"posterior-init-std must be positive, got {c.posterior_init_std}"),
        (c.train_examples is None or c.train_examples >= 1,
         f"train-examples must be at least 1, got {c.train_examples}"),
        (c.eval_likelihood >= 0,
         f"eval-likelihood must be at least 0, got {c.eval_likelihood}"),
        (c.engine in ENGINES,
         f"engine must be one of {', '.join(ENGINES)}, got {c.engine!r}"),
        (c.estimator in ("A", "B", "iwae"),
         f"estimator must be A, B or iwae, got {c.estimator!r}"),
        (math.isfinite(c.kl_weight) and c.kl_weight > 0,
         f"kl-weight must be positive, got {c.kl_weight}"),
        (c.kl_warmup >= 0, f"kl-warmup must be at least 0, got {c.kl_warmup}"),
        *label_rules(c, getattr(_network(c.network), "takes_labels", False)),
    ]


def _rules_of_choices(c: "TrainConfig") -> list[tuple[bool, str]]:
    """TrainConfig's rules on its choices (network, prior, optimizer, ...) and lengths:
    (holds, the message if not) per rule, in the order they are checked."""
    return [
        (_network(c.network) is not None,
         f"network must be {_either(tuple(_networks()))}, got {c.network!r}"),
        (0 <= c.prior_components <= 2**20,
         f"prior-components must be between 0 and 2^20, got {c.prior_components}"),
        (c.posterior in _posteriors(),
         f"posterior must be {_either(_posteriors())}, got {c.posterior!r}"),
        (0 <= c.flow_steps <= 64, f"flow-steps must be between 0 and 64, got {c.flow_steps}"),
        (c.prior in PRIORS,
         f"prior must be one of {', '.join(PRIORS)}, got {c.prior!r}"),
        (c.activation in ("tanh", "relu", "softplus", "elu"),
         f"activation must be tanh, relu, softplus or elu, got {c.activation!r}"),
        (c.mc_samples >= 1, f"mc-samples must be at least 1, got {c.mc_samples}"),
        (c.batch_size >= 1, f"batch size must be at least 1, got {c.batch_size}"),
        (c.optimizer in ("adagrad", "adam"),
         f"optimizer must be adagrad or adam, got {c.optimizer!r}"),
        (math.isfinite(c.lr) and c.lr > 0, f"lr must be positive, got {c.lr}"),
        (c.lr_schedule in ("constant", "iwae", "cosine"),
         f"lr-schedule must be constant, iwae or cosine, got {c.lr_schedule!r}"),
        (math.isfinite(c.init_std) and c.init_std > 0,
         f"init-std must be positive, got {c.init_std}"),
        (c.weight_prior_std is None or c.weight_prior_std > 0,
         f"weight-prior-std must be positive, got {c.weight_prior_std}"),
        (c.samples is None or c.samples >= 1,
         f"samples must be at least 1, got {c.samples}"),
        (c.epochs is None or (math.isfinite(c.epochs) and c.epochs > 0),
         f"epochs must be positive, got {c.epochs}"),
        (c.samples is None or c.epochs is None, "give samples or epochs, not both"),
        (c.eval_points >= 1, f"eval-points must be at least 1, got {c.eval_points}"),
        (c.eval_examples >= 1, f"eval-examples must be at least 1, got {c.eval_examples}"),
        (c.checkpoint_every >= 1,
         f"checkpoint-every must be at least 1, got {c.checkpoint_every}"),
        (0 < c.test_fraction < 1, f"test-fraction must lie in (0, 1), got {c.test_fraction}"),
        (c.device in ("auto", "cpu", "cuda"),
         f"device must be auto, cpu or cuda, got {c.device!r}"),
    ]


def saved_config(info) -> TrainConfig:
    """The TrainConfig in a run's config.json (as `checkpoint.read_config` returns it),
    validated like any other: AevbError for a section that is missing or malformed."""
    values = info.get("config") if isinstance(info, dict) else None
    if not isinstance(values, dict):
        raise AevbError("config.json has no valid config section")
    values = dict(values)
    # Runs from before the engines: `fused` chose the hand-written step (now the native one
    # where it serves); runs from before that and the C kernels continue eagerly.
    fused = values.pop("fused", None)
    values.setdefault("engine", "auto" if fused else "eager")
    values.setdefault("kernels", False)
    for name in ("hidden", "top_hidden"):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    return TrainConfig.from_dict(values)


def field_help(cls=None) -> dict[str, str]:
    """Each field's trailing comment in the source of `cls` (default TrainConfig), so
    `aevb train --help` and the code share one text."""
    import inspect
    import re

    found = re.findall(r"^    (\w+): [^=\n]+= [^#\n]+#\s*(.+)$",
                       inspect.getsource(cls or TrainConfig), flags=re.M)
    return dict(found)


def resolve(preset: str | None = None, **overrides) -> TrainConfig:
    """Defaults, then the preset's values, then explicit overrides (e.g. parsed CLI flags)."""
    values: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise AevbError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    if overrides.get("samples") is not None:  # a length given replaces the preset's
        values.pop("epochs", None)
    values.update(overrides)
    return TrainConfig.from_dict(values)
