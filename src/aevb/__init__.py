"""aevb: Auto-Encoding Variational Bayes (Kingma & Welling 2013, arXiv 1312.6114).

    run_dir = aevb.train(aevb.resolve("mnist-paper", samples=10**6))
    model = aevb.load(run_dir)
    q = model.encode(x)        # q_phi(z|x), a torch.distributions object
    p = model.decode(z)        # p_theta(x|z)
"""
__version__ = "0.1.0"

from .checkpoint import load  # noqa: E402
from .config import PRESETS, TrainConfig, resolve  # noqa: E402
from .errors import AevbError  # noqa: E402
from .model import VAE, ModelConfig  # noqa: E402
from .train import resume, train  # noqa: E402  (the function shadows the module name)

__all__ = ["load", "train", "resume", "TrainConfig", "resolve", "PRESETS", "VAE", "ModelConfig",
           "AevbError"]
