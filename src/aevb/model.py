"""The variational autoencoder of Kingma & Welling (2013), section 3.

theta -> z -> x: a prior p(z) = N(0, I), a generative model p_theta(x|z) (the decoder) and a
recognition model q_phi(z|x) (the encoder). The model only maps tensors to distributions; the
objectives that train it live in `aevb.maths.objectives`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.distributions import Categorical, Independent

from . import priors
from .errors import AevbError
from .full_vb import ParameterPosterior
from .hierarchy import BottomDecoder, TwoLayerEncoder, TwoLayerPrior
from .labelled import Classifier, EveryClass, Given
from .networks import NETWORKS
from .networks.heads import LIKELIHOODS, POSTERIORS
from .networks.heads import posterior_class as POSTERIOR_CLASS
from .networks.mlp import ACTIVATIONS


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; saved inside every run directory.

    data_shape: the shape of one data point, (H, W) or (C, H, W) for images, or (D,); the
    MLPs see the flattened D = prod(data_shape) values, the convolutional networks
    (network "conv", `aevb.networks.conv`) the image.
    """

    data_shape: tuple[int, ...]
    latent_dim: int = 20
    hidden: tuple[int, ...] = (500,)
    likelihood: str = "bernoulli"
    network: str = "mlp"  # mlp | conv
    activation: str = "tanh"
    # alpha of the prior N(0, alpha^2 I) over the decoder's parameters theta, which then have
    # a Gaussian posterior q_phi(theta) (appendix F, `aevb.full_vb`); None: theta is a point
    # estimate.
    theta_prior_std: float | None = None
    prior: str = "standard-normal"  # p(z): a name of aevb.priors.REGISTRY
    prior_components: int = 0  # parts of a mixture or VampPrior; 0: the prior's default
    posterior: str = "gaussian"  # q_phi(z|x): a name of aevb.networks.heads.POSTERIORS
    flow_steps: int = 0  # T of a flow posterior (iaf); 0: its default
    # Two stochastic layers (aevb.hierarchy): the last top_latent_dim of the latent_dim values
    # of z are z2, above z1; top_hidden: the MLPs of q(z2|z1) and (reversed) p(z1|z2).
    top_latent_dim: int = 0
    top_hidden: tuple[int, ...] = (100, 100)
    # Labels (aevb.labelled): C classes of a label y beside x in q_phi(z|x, y) and beside z in
    # p_theta(x|y, z) (0: no label); classifier_hidden: the MLP of q_phi(y|x) (M2), or None.
    classes: int = 0
    classifier_hidden: tuple[int, ...] | None = None

    def __post_init__(self):
        def whole(v):
            return isinstance(v, int) and not isinstance(v, bool)

        def sizes(v):
            return isinstance(v, (list, tuple)) and all(whole(s) for s in v)

        for name, ok in (("data_shape", sizes(self.data_shape) and len(self.data_shape) >= 1),
                         ("latent_dim", whole(self.latent_dim)), ("hidden", sizes(self.hidden)),
                         ("likelihood", isinstance(self.likelihood, str)),
                         ("network", isinstance(self.network, str)),
                         ("activation", isinstance(self.activation, str)),
                         ("prior", isinstance(self.prior, str)),
                         ("prior_components", whole(self.prior_components)),
                         ("posterior", isinstance(self.posterior, str)),
                         ("flow_steps", whole(self.flow_steps)),
                         ("top_latent_dim", whole(self.top_latent_dim)),
                         ("top_hidden", sizes(self.top_hidden)),
                         ("classes", whole(self.classes)),
                         ("classifier_hidden", self.classifier_hidden is None
                          or sizes(self.classifier_hidden)),
                         ("theta_prior_std", self.theta_prior_std is None or (
                             isinstance(self.theta_prior_std, (int, float))
                             and not isinstance(self.theta_prior_std, bool)))):
            if not ok:
                raise AevbError(f"model setting {name} has an invalid value "
                                f"{getattr(self, name)!r}")
        object.__setattr__(self, "data_shape", tuple(self.data_shape))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "top_hidden", tuple(self.top_hidden))
        if self.classifier_hidden is not None:
            object.__setattr__(self, "classifier_hidden", tuple(self.classifier_hidden))
        if any(s < 1 or s > 2**31 for s in self.data_shape) or math.prod(self.data_shape) > 2**31:
            raise AevbError(f"data shape must be positive sizes of at most 2^31 values in all, "
                            f"got {list(self.data_shape)}")
        if self.latent_dim > 2**31 or any(h > 2**31 for h in self.hidden):
            raise AevbError("latent dimension and hidden sizes must be below 2^31")
        if self.latent_dim < 1:
            raise AevbError(f"latent dimension must be at least 1, got {self.latent_dim}")
        if any(h < 1 for h in self.hidden):
            raise AevbError(f"hidden layer sizes must be at least 1, got {list(self.hidden)}")
        if self.network not in NETWORKS:
            raise AevbError(f"network must be {' or '.join(NETWORKS)}, got {self.network!r}")
        if self.activation not in ACTIVATIONS:
            raise AevbError(f"unknown activation {self.activation!r}; choose one of "
                            f"{', '.join(ACTIVATIONS)}")
        refused = NETWORKS[self.network].check(self.data_shape)
        if refused:
            raise AevbError(refused)
        if self.theta_prior_std is not None and not self.theta_prior_std > 0:
            raise AevbError(f"the prior's standard deviation must be positive, "
                            f"got {self.theta_prior_std}")
        self._check_latent_structure()
        self._check_labels()
        if self.prior not in priors.NAMES:
            raise AevbError(f"prior must be one of {', '.join(priors.NAMES)}, "
                            f"got {self.prior!r}")
        if self.likelihood not in LIKELIHOODS:
            raise AevbError(f"unknown likelihood {self.likelihood!r}; choose one of "
                            f"{', '.join(LIKELIHOODS)}")

    def _check_latent_structure(self):
        """The settings of the prior, the posterior and a second stochastic layer."""
        if not 0 <= self.prior_components <= 2**20:
            raise AevbError(f"prior components must be between 0 and 2^20, got "
                            f"{self.prior_components}")
        if self.posterior not in POSTERIORS:
            raise AevbError(f"posterior must be one of {', '.join(POSTERIORS)}, "
                            f"got {self.posterior!r}")
        if not 0 <= self.flow_steps <= 64:
            raise AevbError(f"flow steps must be between 0 and 64, got {self.flow_steps}")
        if not 0 <= self.top_latent_dim < self.latent_dim:
            raise AevbError(f"the top layer's dimension must be at least 0 and below the "
                            f"latent dimension {self.latent_dim} (z1 keeps the rest), got "
                            f"{self.top_latent_dim}")
        if any(h < 1 or h > 2**31 for h in self.top_hidden):
            raise AevbError(f"top hidden sizes must be positive, got {list(self.top_hidden)}")
        if self.top_latent_dim and not POSTERIOR_CLASS(self.posterior).exports_parameters:
            raise AevbError(f"two stochastic layers take the gaussian posterior for each, "
                            f"not {self.posterior}")

    def _check_labels(self):
        """The settings of a label y (`aevb.labelled`) and what they combine with."""
        if self.classes == 1 or not 0 <= self.classes <= 2**20:
            raise AevbError(f"a label needs 2 to 2^20 classes (0: no label), got {self.classes}")
        if self.classifier_hidden is not None and not self.classes:
            raise AevbError("a classifier q(y|x) needs a label: classes must be 2 or more")
        if self.classifier_hidden is not None and any(h < 1 or h > 2**31
                                                      for h in self.classifier_hidden):
            raise AevbError(f"classifier hidden sizes must be positive, got "
                            f"{list(self.classifier_hidden)}")
        if not self.classes:
            return
        for refused, why in ((not NETWORKS[self.network].takes_labels,
                              f"the {self.network} networks"),
                             (self.top_latent_dim > 0, "two stochastic layers"),
                             (self.prior == "vamp", "a VampPrior (its pseudo-inputs have "
                              "no label)")):
            if refused:
                raise AevbError(f"a label conditions the mlp networks of one stochastic layer "
                                f"for now, not {why}")

    @property
    def data_dim(self) -> int:
        return math.prod(self.data_shape)

    def to_dict(self) -> dict:
        return asdict(self)


class VAE(nn.Module):
    """q_phi(z|x), p_theta(x|z) and the prior p(z) (`aevb.priors`; N(0, I) by default)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        j1, j2 = c.latent_dim - c.top_latent_dim, c.top_latent_dim
        # the family's networks between x and z1 (all of z with one layer)
        self.encoder, self.decoder = NETWORKS[c.network].build(
            dataclasses.replace(c, latent_dim=j1, top_latent_dim=0) if j2 else c)
        if j2:
            self.encoder = TwoLayerEncoder(self.encoder, j1, j2, c.top_hidden, c.activation)
            self.decoder = BottomDecoder(self.decoder, j1)
        # q_phi(theta)'s log sigma; its mean is the decoder's parameters (aevb.full_vb).
        self.theta_posterior = ParameterPosterior(self.decoder) \
            if config.theta_prior_std is not None else None
        # after the rest: old checkpoints keep their parameter order
        self.p_z = priors.make(c.prior, j2 or c.latent_dim, encoder=self.encoder,
                               data_shape=c.data_shape, components=c.prior_components)
        if j2:  # p(z2) above p(z1|z2)
            self.p_z = TwoLayerPrior(self.p_z, j1, tuple(reversed(c.top_hidden)), c.activation)
        self.classifier = None if c.classifier_hidden is None else \
            Classifier(c.data_dim, c.classifier_hidden, c.classes, c.activation)

    def encode(self, x: torch.Tensor) -> Independent:
        """q_phi(z|x): x [N, D] (or [N, *data_shape]) -> distribution with batch [N], event [J]."""
        self._unconditional("encode")
        return self.encoder(x.reshape(x.shape[0], -1))

    def decode(self, z: torch.Tensor) -> Independent:
        """p_theta(x|z): z [..., J] -> distribution with batch [...], event [D]."""
        self._unconditional("decode")
        return self.decoder(z)

    def given(self, y: torch.Tensor) -> Given:
        """The model with the labels y [N] (int64, or one-hot [N, C]) observed: its encode is
        q_phi(z|x, y) and its decode p_theta(x|y, z) (`aevb.labelled`)."""
        if not self.config.classes:
            raise AevbError("this model has no label to condition on")
        return Given(self, y)

    def every_class(self, n: int) -> EveryClass:
        """The model given each of the C classes for n points repeated class-major ([C n]
        rows: `aevb.labelled.EveryClass`), the layout in which M2 sums y out."""
        if not self.config.classes:
            raise AevbError("this model has no label to condition on")
        return EveryClass(self, n)

    def classify(self, x: torch.Tensor) -> Categorical:
        """q_phi(y|x): x [N, D] -> a Categorical over the C classes with batch [N] (M2)."""
        if self.classifier is None:
            raise AevbError("this model has no classifier q(y|x)")
        return self.classifier(x)

    def _unconditional(self, what: str) -> None:
        if self.config.classes:
            raise AevbError(f"this model conditions on a label y: {what} through "
                            "model.given(y)")

    def prior(self) -> torch.distributions.Distribution:
        """p(z), event [J], on the model's device (N(0, I) unless the config names another)."""
        return self.p_z()

    @torch.no_grad()
    def dream(self, n: int, generator: torch.Generator | None = None,
              y: torch.Tensor | None = None):
        """n "fantasies" of the generative model: z ~ p(z), x ~ p_theta(x|z); ([n, J], [n, D]).
        A model with a label draws x ~ p_theta(x|y, z) for the labels y [n] (int64), drawn
        from p(y) = Cat(1/C) where not given."""
        z = self.p_z.sample(n, generator)  # [n, J]
        return z, self._generator_at(n, generator, y).decode(z).draw(generator)

    def sample(self, n: int, generator: torch.Generator | None = None,
               y: torch.Tensor | None = None) -> torch.Tensor:
        """n draws x ~ p_theta(x|z), z ~ p(z); returns [n, *data_shape] (with a label:
        x ~ p_theta(x|y, z) for y [n] given or drawn from p(y)).

        For the decoder means (what the paper's figures show) use
        `model.decode(z).mean` with z drawn from `model.prior()`.
        """
        return self.dream(n, generator, y)[1].reshape(n, *self.config.data_shape)

    def _generator_at(self, n: int, generator, y):
        """What decodes n draws of z: the model, or the model given the labels y."""
        if not self.config.classes:
            if y is not None:
                raise AevbError("this model has no label to condition on")
            return self
        if y is None:
            device = next(self.parameters()).device
            y = torch.randint(self.config.classes, (n,), generator=generator,
                              device=generator.device if generator is not None else device)
        return self.given(y)


def initialize(model: nn.Module, std: float, generator: torch.Generator | None = None,
               posterior_std: float = 0.01) -> None:
    """Draw every parameter from N(0, std^2), as the paper does with std = 0.01 (section 5);
    a posterior over theta (appendix F) starts with every sigma at posterior_std."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * std)
    if getattr(model, "theta_posterior", None) is not None:
        model.theta_posterior.reset(posterior_std)
    if hasattr(getattr(model, "p_z", None), "reset"):
        model.p_z.reset(generator)
