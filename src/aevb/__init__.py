"""aevb: Auto-Encoding Variational Bayes (Kingma & Welling 2013, arXiv 1312.6114).

    run_dir = aevb.train(aevb.resolve("mnist-paper", samples=10**6))
    model = aevb.load(run_dir)
    q = model.encode(x)        # q_phi(z|x), a torch.distributions object
    p = model.decode(z)        # p_theta(x|z)
"""
import importlib

__version__ = "0.1.0"

# Public name -> module that defines it. Loaded on first use, so `import aevb` (and the `aevb`
# command, which must set MKL's environment before torch loads) does not import torch.
_EXPORTS = {"load": "checkpoint", "train": "trainer", "resume": "trainer",
            "TrainConfig": "config", "resolve": "config", "PRESETS": "config",
            "VAE": "model", "ModelConfig": "model", "AevbError": "errors"}
__all__ = list(_EXPORTS)


def __getattr__(name):
    # before whatever follows loads torch (import_module: `from . import` would call this)
    importlib.import_module(".numerics", __name__).prepare_environment()
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if not name.startswith("_"):  # every module and sub-package: aevb.full_vb, aevb.conv, ...
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'aevb' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
