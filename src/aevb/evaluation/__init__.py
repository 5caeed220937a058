"""Honest evaluation: the average bound and the importance-sampled log-likelihood of a
model (`evaluate`), of a run directory on its own split (`runs`), and how the model uses
its latent space (`latents`)."""


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
