import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _default_float_settings():
    """aevb.train() turns on flush-to-zero for its process (aevb.compute.numerics); tests that train
    in-process must not leave it on for the tests after them (hypothesis draws subnormals)."""
    yield
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_flush_denormal(False)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data files (../shared/data in CI, through AEVB_DATA); tests never download."""
    root = os.environ.get("AEVB_DATA")
    if not root or not Path(root, "mnist").is_dir():
        if os.environ.get("CI"):
            pytest.fail("AEVB_DATA must point at the shared data in CI")
        pytest.skip("AEVB_DATA not set: real-data test skipped")
    return Path(root)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A small model trained for a few seconds on the bundled digits, shared by several tests."""
    import aevb

    out = tmp_path_factory.mktemp("runs") / "digits"
    cfg = aevb.resolve(dataset="digits", latent_dim=4, hidden=(64,), epochs=30, lr=0.05,
                       eval_points=3, out=str(out), download=False)
    return aevb.train(cfg, progress=False)


@pytest.fixture(scope="session")
def lib():
    """The native backend's C library, or a skip that says why it is unavailable (as with
    AEVB_KERNELS=0, CI's second pass)."""
    from aevb.native import library

    loaded = library.load()
    if loaded is None:
        pytest.skip(f"aevb.native unavailable here: {library.unavailable_reason()}")
    return loaded
