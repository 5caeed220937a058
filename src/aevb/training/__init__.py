"""Training: Algorithm 1's loop and its hooks (`loop`), the public `train`/`resume`
(`trainer`), what a run is built from its config (`build`), how a step's maths runs
(`engine`), the process-wide settings (`numerics`), stops by signal (`interrupt`),
memory checks (`resources`), torchrun (`distributed`) and the paper's figures as runs
(`reproduce`)."""


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
