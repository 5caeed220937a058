"""How the maths runs: the engines of a training step (`engine`: eager, torch.compile, the
native C step), the process-wide float settings (`numerics`), torch.distributed
(`distributed`) and the memory a request needs (`resources`)."""


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
