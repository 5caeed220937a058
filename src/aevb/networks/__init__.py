"""The network families: the name in --network and ModelConfig.network -> the object that
builds its encoder and decoder and says what it takes (`networks.MLP`, `conv.Conv`).
A new family is one new module with such an object and one line here."""
from __future__ import annotations

from .conv import Conv
from .mlp import MLP

NETWORKS = {"mlp": MLP(), "conv": Conv()}


def widest(c) -> int:
    """The most values one sample of one data point holds in a layer of the model of
    ModelConfig `c` (for chunk sizes and memory estimates)."""
    return NETWORKS[getattr(c, "network", "mlp")].widest(c)


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
