"""Every figure command writes a PNG of the expected size; report.html renders in Chromium."""
import os
import shutil
import subprocess

import numpy as np
import pytest
from cli_helpers import cli
from PIL import Image

from aevb.outputs import plots


def aevb_cli(*args):
    r = cli(*args, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def grid_size(rows, cols, h, w, scale, pad=1):
    return (cols * (w + pad) + pad) * scale, (rows * (h + pad) + pad) * scale


# digits_run: 8x8 images (tiles drawn 7x), N_z = 4, 180 test points.
@pytest.mark.parametrize("args, size", [
    (["manifold", "-n", "5"], grid_size(5, 5, 8, 8, 7)),
    (["manifold", "-n", "3", "--dims", "2,3"], grid_size(3, 3, 8, 8, 7)),
    (["sample", "-n", "12"], grid_size(3, 4, 8, 8, 7)),
    (["reconstruct", "-n", "6"], grid_size(2, 6, 8, 8, 7)),
    (["latent"], (600, 600)),
    (["plot"], (800, 500)),
])
def test_figure_commands_write_pngs_of_the_expected_size(digits_run, tmp_path, args, size):
    out = tmp_path / "figure.png"
    printed = aevb_cli(args[0], str(digits_run), *args[1:], "--out", str(out))
    assert printed == str(out)
    image = Image.open(out)
    assert image.format == "PNG" and image.size == size
    pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5  # not a blank canvas


def test_training_leaves_every_figure_and_the_report(digits_run):
    for name in ("curves.png", "manifold.png", "samples.png", "reconstructions.png",
                 "latent.png", "report.html"):
        assert (digits_run / name).stat().st_size > 1000, name


def test_manifold_grid_follows_the_inverse_gaussian_cdf():
    class Probe:
        """Decodes z to an image that records z itself, to read the grid back."""

        class config:
            latent_dim = 2
            data_shape = (1, 2)

        def parameters(self):
            import torch
            yield torch.zeros(1)

        def decode(self, z):
            class P:
                mean = z
            return P()

    import tempfile

    import torch
    from scipy.stats import norm

    captured = {}
    original = plots.save_grid
    plots.save_grid = lambda images, rows, cols, path, scale: captured.update(images=images)
    try:
        plots.manifold(Probe(), tempfile.mktemp(), n=4)
    finally:
        plots.save_grid = original
    z = captured["images"].reshape(4, 4, 2)
    expected = norm.ppf((np.arange(4) + 0.5) / 4)
    np.testing.assert_allclose(z[0, :, 0], expected, rtol=1e-6)  # z_0 left to right
    np.testing.assert_allclose(z[:, 0, 1], expected[::-1], rtol=1e-6)  # z_1 top to bottom
    del torch


def _find(haystack: np.ndarray, needle: np.ndarray) -> bool:
    """Whether `needle` appears pixel for pixel (within 2 grey levels) inside `haystack`."""
    row = int(np.argmax(needle.std(axis=1)))  # the most varied row: few false starts
    key = needle[row]
    for y in range(row, haystack.shape[0] - needle.shape[0] + row + 1):
        line = haystack[y].tobytes()
        x = line.find(key.tobytes())
        while x != -1:
            block = haystack[y - row:y - row + needle.shape[0], x:x + needle.shape[1]]
            if block.shape == needle.shape and np.abs(block.astype(int) - needle).max() <= 2:
                return True
            x = line.find(key.tobytes(), x + 1)
    return False


def test_report_renders_with_its_images_in_headless_chromium(digits_run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install chromium)")
    report = digits_run / "report.html"
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--force-device-scale-factor=1",
                    "--hide-scrollbars", "--window-size=1400,6000",
                    f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    screen = np.asarray(Image.open(shot).convert("L"))
    # The grids are embedded at their natural size, so their pixels appear verbatim.
    for name in ("samples.png", "reconstructions.png"):
        assert _find(screen, np.asarray(Image.open(digits_run / name).convert("L"))), name
