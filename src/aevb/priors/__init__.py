"""Priors p(z) over the latent space, each a module whose call returns the distribution.

    prior = aevb.priors.make("mixture", latent_dim=20)
    p = prior()                    # a torch.distributions object, event [J]
    z = prior.sample(n, generator)  # [n, J]

A new prior is one new module here (a subclass of `base.Prior`) and one line in REGISTRY;
`--prior NAME` and ModelConfig.prior then take it (docs/architecture.md shows the
mixture-of-Gaussians prior as the worked example). Nothing is imported until a prior is made.
"""
from __future__ import annotations

import importlib

# name -> "module:class" of this package
REGISTRY = {
    "standard-normal": "standard_normal:StandardNormalPrior",  # N(0, I), the paper's
    "mixture": "mixture:GaussianMixturePrior",  # a learned mixture of 10 diagonal Gaussians
    "vamp": "vamp:VampPrior",  # the encoder's posteriors at 500 learned pseudo-inputs
}
NAMES = tuple(REGISTRY)


def make(name: str, latent_dim: int, **context):
    """A new prior module `name` of REGISTRY over `latent_dim` dimensions; `context` (the
    model's encoder, data_shape, components) goes to the prior's `build`."""
    if name not in REGISTRY:
        from ..errors import AevbError

        raise AevbError(f"prior must be one of {', '.join(NAMES)}, got {name!r}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls).build(latent_dim,
                                                                              **context)


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
