"""`aevb explore`: the page's networks and pictures against Python's, in a real browser
(Debian's chromium through Selenium and chromedriver), opened from file:// with no server."""
import json
import os
import shutil
import time

import numpy as np
import pytest
import torch

import aevb
from cli_helpers import cli
from aevb.evaluation.evaluate import importance_log_likelihood
from aevb.maths.objectives import elbo_b, iwae_bound
from aevb.model import VAE, ModelConfig, initialize
from aevb.outputs.explorer import page_model, render
from aevb.rundir.checkpoint import load


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless chromium driven by Selenium; a skip that says why where none can be had
    (a failure in CI, whose .ci/run installs chromium and chromium-driver)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [name for name, found in (("chromium", chromium), ("chromedriver", driver),
                                        ("selenium", webdriver)) if not found]
    if missing:
        why = f"{', '.join(missing)} missing (apt-get install chromium chromium-driver; " \
              "pip install selenium)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1100", "--force-device-scale-factor=1",
                f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


def _train(out, **kw):
    settings = dict(dataset="digits", epochs=8, eval_points=2, download=False, out=str(out))
    settings.update(kw)
    return aevb.train(aevb.resolve(**settings), progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore")
    # Two hidden layers and relu with a Bernoulli decoder; N_z = 5, softplus, Gaussian decoder.
    return {"nz2": _train(root / "nz2", latent_dim=2, hidden=(32, 16), activation="relu"),
            "nz5": _train(root / "nz5", latent_dim=5, hidden=(40,), activation="softplus",
                          likelihood="gaussian")}


def _open(browser, path):
    browser.get(path.resolve().as_uri())
    for _ in range(100):
        if browser.execute_script("return !!(window.aevbExplorer && aevbExplorer.ready)"):
            return
        time.sleep(0.05)
    raise AssertionError(f"the page did not start: {browser.get_log('browser')}")


def _severe(browser):
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


@pytest.mark.parametrize("name", ["nz2", "nz5"])
def test_the_pages_networks_agree_with_the_model(browser, runs, name):
    run = runs[name]
    assert (run / "explorer.html").exists()  # training wrote it
    assert 'href="explorer.html"' in (run / "report.html").read_text()
    _open(browser, run / "explorer.html")
    model = load(run)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, model.config.data_dim, generator=g)
    z = torch.randn(6, model.config.latent_dim, generator=g) * 1.5
    enc = browser.execute_script(
        "return arguments[0].map(x => aevbExplorer.encode(Float32Array.from(x)))", x.tolist())
    dec = browser.execute_script(
        "return arguments[0].map(z => Array.from(aevbExplorer.decode(z)))", z.tolist())
    with torch.no_grad():
        q, p = model.encode(x), model.decode(z).mean
    np.testing.assert_allclose([e["mean"] for e in enc], q.mean.numpy(), atol=1e-4)
    np.testing.assert_allclose([e["logVar"] for e in enc], 2 * q.stddev.log().numpy(),
                               atol=1e-4)
    np.testing.assert_allclose(dec, p.numpy(), atol=1e-4)
    assert not _severe(browser)


@pytest.mark.parametrize("name", ["nz2", "nz5"])
def test_the_pages_likelihood_and_score_agree_with_the_objectives(browser, runs, name):
    """Fixed inputs and fixed noise: the page's log p_theta(x|z) (Bernoulli for nz2,
    Gaussian for nz5), its bound and its importance-sampled log p(x) equal the Python
    definitions (a float64 copy of the model: `decode().log_prob`, `objectives.elbo_b`,
    `objectives.iwae_bound`) to 1e-4 relative."""
    run = runs[name]
    _open(browser, run / "explorer.html")
    model = load(run).double()
    g = torch.Generator().manual_seed(1)
    j, d = model.config.latent_dim, model.config.data_dim
    x = torch.rand(4, d, generator=g, dtype=torch.float64)
    if name == "nz2":
        x = (x < 0.3).double()  # binary data for the Bernoulli decoder
    z = torch.randn(4, j, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 50, j, generator=g, dtype=torch.float64)  # [points, K, J]
    page_ll = browser.execute_script(
        "return arguments[0].map((x, i) => aevbExplorer.likelihood(Float32Array.from(x), "
        "arguments[1][i]))", x.tolist(), z.tolist())
    page = browser.execute_script(
        "return arguments[0].map((x, i) => aevbExplorer.scoreGiven(Float32Array.from(x), "
        "arguments[1][i]))", x.tolist(), eps.tolist())
    with torch.no_grad():
        ll = model.decode(z).log_prob(x)
        bound = torch.stack([elbo_b(model, x[i:i + 1], eps[i][:, None]) for i in range(4)])
        iwae = torch.stack([iwae_bound(model, x[i:i + 1], eps[i][:, None]) for i in range(4)])
    np.testing.assert_allclose(page_ll, ll.numpy(), rtol=1e-4)
    np.testing.assert_allclose([s["bound"] for s in page], bound.squeeze(-1).numpy(), rtol=1e-4)
    np.testing.assert_allclose([s["logLikelihood"] for s in page], iwae.squeeze(-1).numpy(),
                               rtol=1e-4)
    assert not _severe(browser)


def _canvas_pixels(browser, element_id):
    return np.array(browser.execute_script(
        "const c = document.getElementById(arguments[0]);"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)",
        element_id)).reshape(-1, 4)


def _decode_pixels(model, z):
    with torch.no_grad():
        mean = model.decode(torch.tensor([z], dtype=torch.float32)).mean[0]
    return (mean.clamp(0, 1) * 255).round().numpy()


def _point_at(browser, z_plane):
    """Move the real pointer over the plane to plane coordinates z_plane; the page's z."""
    from selenium.webdriver.common.action_chains import ActionChains

    plane = browser.find_element("id", "plane")
    px, py = browser.execute_script("return aevbExplorer.toPixel(...arguments[0])", z_plane)
    scale = plane.size["width"] / float(plane.get_attribute("width"))
    ActionChains(browser).move_to_element_with_offset(
        plane, int(round(px * scale - plane.size["width"] / 2)),
        int(round(py * scale - plane.size["height"] / 2))).perform()
    time.sleep(0.2)  # the next animation frame decodes
    return json.loads(browser.find_element("id", "decoded").get_attribute("data-z"))


def test_pointer_decodes_the_z_under_it(browser, runs):
    run = runs["nz2"]
    _open(browser, run / "explorer.html")
    model = load(run)
    z = _point_at(browser, [0.8, -1.2])
    assert z == pytest.approx([0.8, -1.2], abs=0.05)  # within a pixel of the plane
    drawn = _canvas_pixels(browser, "decoded")[:, 0]
    assert np.abs(drawn - _decode_pixels(model, z)).max() <= 1
    assert not _severe(browser)


def test_a_drawn_stroke_is_encoded_and_scored_as_python_does(browser, runs):
    from selenium.webdriver.common.action_chains import ActionChains

    run = runs["nz2"]
    _open(browser, run / "explorer.html")
    canvas = browser.find_element("id", "draw")
    w, h = canvas.size["width"], canvas.size["height"]
    ActionChains(browser).move_to_element_with_offset(canvas, -w // 5, -h // 3).click_and_hold() \
        .move_by_offset(w // 5, h // 4).move_by_offset(w // 6, h // 4) \
        .move_by_offset(-w // 10, h // 4).release().perform()
    stats = browser.find_element("id", "stats")
    for _ in range(200):
        if stats.get_attribute("data-log-likelihood"):
            break
        time.sleep(0.05)
    x = torch.tensor(browser.execute_script("return aevbExplorer.state.input"), dtype=torch.float32)
    assert 3 <= x.sum() <= 40 and set(x.unique().tolist()) <= {0.0, 1.0}  # a binary stroke
    shown = json.loads(stats.get_attribute("data-mean"))
    model = load(run)
    with torch.no_grad():
        q = model.encode(x[None])
        bound = elbo_b(model, x[None], torch.randn(20000, 1, 2)).item()
    np.testing.assert_allclose(shown, q.mean[0].numpy(), atol=1e-4)
    # The page's log p(x) (K = 1000) is the estimate `aevb evaluate --per-example` makes
    # (K = 5000): equal up to their Monte Carlo errors.
    reference = importance_log_likelihood(model, x[None], 5000, seed=0).item()
    assert float(stats.get_attribute("data-log-likelihood")) == pytest.approx(reference, abs=0.3)
    assert float(stats.get_attribute("data-bound")) == pytest.approx(bound, abs=0.3)
    assert float(stats.get_attribute("data-bound")) < reference
    assert not _severe(browser)


def test_a_five_dimensional_model_has_sliders_that_move_z(browser, runs):
    run = runs["nz5"]
    _open(browser, run / "explorer.html")
    sliders = browser.find_elements("css selector", "#sliders input[type=range]")
    assert len(sliders) == 3
    browser.execute_script("arguments[0].value = arguments[0].max * 0.5;"
                           "arguments[0].dispatchEvent(new Event('input'))", sliders[0])
    value = float(sliders[0].get_attribute("value"))
    z = _point_at(browser, [0.3, 0.4])
    coords = browser.execute_script("return aevbExplorer.project(arguments[0])", z)
    assert coords[:3] == pytest.approx([0.3, 0.4, value], abs=0.05)
    drawn = _canvas_pixels(browser, "decoded")[:, 0]
    assert np.abs(drawn - _decode_pixels(load(run), z)).max() <= 1
    assert not _severe(browser)


def test_report_figures_fit_a_1200_pixel_window(browser, data_dir, tmp_path):
    run = aevb.train(aevb.resolve("mnist-paper", latent_dim=2, samples=2000, eval_points=1,
                                  eval_examples=500, data_dir=str(data_dir), download=False,
                                  out=str(tmp_path / "mnist")), progress=False)
    browser.set_window_size(1200, 1000)
    try:
        browser.get((run / "report.html").resolve().as_uri())
        width = browser.execute_script("return [document.documentElement.scrollWidth, "
                                       "document.documentElement.clientWidth, "
                                       "document.body.clientWidth]")
        manifold = browser.execute_script(
            "return [...document.images].find(i => i.alt == 'manifold.png').naturalWidth")
    finally:
        browser.set_window_size(1300, 1100)
    assert manifold > width[2]  # the picture itself is wider than the page's body...
    assert width[0] <= width[1]  # ...and the page still needs no horizontal scroll bar


def test_mnist_paper_page_stays_under_5_mb():
    model = VAE(ModelConfig((28, 28), latent_dim=2, hidden=(500,)))
    initialize(model, 0.01, torch.Generator().manual_seed(0))
    test = torch.bernoulli(torch.full((10000, 784), 0.13))
    html = render(page_model(model, test, np.arange(10000) % 10, "mnist-paper N_z = 2"))
    assert 3e6 < len(html.encode()) <= 5e6


def test_convolutional_models_are_refused_in_one_line(tmp_path):
    run = _train(tmp_path / "conv", latent_dim=2, hidden=(16,), network="conv", epochs=1)
    done = cli("explore", str(run))
    assert done.returncode == 2 and "convolutions" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (run / "explorer.html").exists()


def test_a_dropped_image_file_is_encoded(browser, runs, tmp_path):
    import base64
    import io

    from PIL import Image

    run = runs["nz2"]
    _open(browser, run / "explorer.html")
    model = load(run)
    from aevb.rundir.evaluations import test_set_of_run

    x = test_set_of_run(run)[7].reshape(8, 8)  # a binarized test digit, 8 x 8
    png = io.BytesIO()
    Image.fromarray((x.numpy() * 255).astype(np.uint8)).resize((64, 64), Image.NEAREST) \
        .save(png, format="PNG")
    browser.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "digit.png", {type: "image/png"}));
        document.getElementById("draw").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
        """, base64.b64encode(png.getvalue()).decode())
    stats = browser.find_element("id", "stats")
    for _ in range(200):
        if stats.get_attribute("data-log-likelihood"):
            break
        time.sleep(0.05)
    seen = torch.tensor(browser.execute_script("return aevbExplorer.state.input"),
                        dtype=torch.float32)
    assert torch.equal(seen, x.flatten())  # the 64 x 64 file, brought back to the model's size
    with torch.no_grad():
        mean = model.encode(x.reshape(1, -1)).mean[0]
    np.testing.assert_allclose(json.loads(stats.get_attribute("data-mean")), mean.numpy(),
                               atol=1e-4)
    assert not _severe(browser)


def test_a_labelled_models_page_has_a_label_selector_that_both_networks_read(browser, tmp_path):
    """M2 (a conditional VAE with a classifier): for every class y the page's encoder, decoder,
    score and classifier equal the model given y (float64 copy for the score), and choosing y
    in the selector redraws the decoded picture as the model given y decodes it."""
    run = _train(tmp_path / "m2", latent_dim=2, hidden=(32,), conditional=True,
                 classifier=(16,), labels=50, epochs=2, optimizer="adam", lr=3e-3,
                 weight_prior_std=None)
    assert (run / "explorer.html").exists()  # training wrote it
    _open(browser, run / "explorer.html")
    model = load(run)
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(3, 64, generator=g) < 0.3).float()
    z = torch.randn(3, 2, generator=g)
    eps = torch.randn(3, 20, 2, generator=g, dtype=torch.float64)
    probs = browser.execute_script(
        "return arguments[0].map(x => aevbExplorer.classify(Float32Array.from(x)))", x.tolist())
    with torch.no_grad():
        np.testing.assert_allclose(probs, model.classify(x).probs.numpy(), atol=1e-5)
    double = load(run).double()
    for y in (0, 4, 9):
        browser.execute_script("aevbExplorer.setLabel(arguments[0])", y)
        enc = browser.execute_script(
            "return arguments[0].map(x => aevbExplorer.encode(Float32Array.from(x)))", x.tolist())
        dec = browser.execute_script(
            "return arguments[0].map(z => Array.from(aevbExplorer.decode(z)))", z.tolist())
        page = browser.execute_script(
            "return arguments[0].map((x, i) => aevbExplorer.scoreGiven(Float32Array.from(x), "
            "arguments[1][i]))", x.tolist(), eps.tolist())
        given = model.given(torch.tensor(y))
        with torch.no_grad():
            q, p = given.encode(x), given.decode(z).mean
            iwae = torch.stack([iwae_bound(double.given(torch.tensor(y)), x[i:i + 1].double(),
                                           eps[i][:, None]) for i in range(3)])
        np.testing.assert_allclose([e["mean"] for e in enc], q.mean.numpy(), atol=1e-4)
        np.testing.assert_allclose(dec, p.numpy(), atol=1e-4)
        np.testing.assert_allclose([s["logLikelihood"] for s in page], iwae.squeeze(-1).numpy(),
                                   rtol=1e-4)
        shown = json.loads(browser.find_element("id", "decoded").get_attribute("data-z"))
        with torch.no_grad():
            expected = (given.decode(torch.tensor([shown], dtype=torch.float32)).mean[0]
                        .clamp(0, 1) * 255).round()
        assert np.abs(_canvas_pixels(browser, "decoded")[:, 0] - expected.numpy()).max() <= 1
    assert not _severe(browser)
