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
_EXPORTS = {"load": "rundir.checkpoint", "train": "training.trainer", "resume": "training.trainer",
            "TrainConfig": "config", "resolve": "config", "PRESETS": "config",
            "VAE": "model", "ModelConfig": "model", "AevbError": "errors"}
__all__ = list(_EXPORTS)
# Modules that lived at the top before the sub-packages (0.1): `aevb.objectives` still works.
_MOVED = {"distributions": "maths.distributions", "objectives": "maths.objectives",
          "hmc": "maths.hmc", "importance": "evaluation.importance",
          "evaluate": "evaluation.evaluate", "latents": "evaluation.latents",
          "conv": "networks.conv", "families": "networks", "engine": "compute.engine",
          "resources": "compute.resources", "distributed": "compute.distributed",
          "trainer": "training.trainer", "run_setup": "training.build",
          "reproduce": "training.reproduce", "checkpoint": "rundir.checkpoint",
          "runs": "rundir.evaluations", "plots": "outputs.plots", "report": "outputs.report",
          "explorer": "outputs.explorer", "export": "outputs.export"}


def __getattr__(name):
    # before whatever follows loads torch (import_module: `from . import` would call this)
    importlib.import_module(".compute.numerics", __name__).prepare_environment()
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _MOVED:
        return importlib.import_module(f".{_MOVED[name]}", __name__)
    return _submodule(__name__, name)  # every module and sub-package: aevb.maths, aevb.full_vb


def _submodule(package: str, name: str):
    """`package.name` imported on first use, so `aevb.maths.objectives` works after `import aevb`
    alone (each sub-package's __getattr__ calls this)."""
    if not name.startswith("_"):
        try:
            return importlib.import_module(f".{name}", package)
        except ModuleNotFoundError as err:
            if err.name != f"{package}.{name}":
                raise
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
