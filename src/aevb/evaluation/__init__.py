"""Honest evaluation: the average bound and the importance-sampled log-likelihood of a
model (`evaluate`) by the one importance-sampling estimator (`importance`), and how the
model uses its latent space (`latents`). A run directory's evaluation is `rundir.evaluations`."""


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
