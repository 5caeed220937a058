"""The training algorithms, each one object behind the interface of `base.Algorithm`.

    algorithm = aevb.algorithms.get("mcem")   # the name in --algorithm and config.json
    step = algorithm.make_step(config, model, optimizer, state, "eager")

The loop (`aevb.training.trainer`), the checkpoint, the report and the CLI ask the object; none of
them compares algorithm names. A new algorithm is one new module here and one line below.
The registry imports nothing until an algorithm is asked for (the CLI builds its flags
before torch loads).
"""
from __future__ import annotations

import importlib

# name -> "module:class" of this package
REGISTRY = {
    "aevb": "sgvb:SGVB",  # minibatch SGVB, Algorithm 1 (section 2.3)
    "wake-sleep": "wake_sleep:WakeSleep",  # the paper's baseline (Hinton et al. 1995)
    "mcem": "mcem:MCEM",  # Monte Carlo EM, the baseline without an encoder (appendix E)
    "full-vb": "full_vb:FullVB",  # a posterior over theta too (appendix F)
}
NAMES = tuple(REGISTRY)

_made: dict = {}


def get(name: str):
    """The `base.Algorithm` registered as `name`."""
    if name not in REGISTRY:
        from ..errors import AevbError

        raise AevbError(f"algorithm must be one of {', '.join(NAMES)}, got {name!r}")
    if name not in _made:
        module, cls = REGISTRY[name].split(":")
        _made[name] = getattr(importlib.import_module(f".{module}", __name__), cls)()
    return _made[name]


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
