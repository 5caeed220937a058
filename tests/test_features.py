"""M1 + M2 (issue 29, aevb.features): M2 trained on M1's latent means, checked against the
means computed by hand from M1's weights in float64; the `normal` likelihood against
scipy.stats; the run keeps its own copy of M1; pictures decode through M1; bad features
refused in one line."""
import shutil

import numpy as np
import pytest
import scipy.stats
import torch
from cli_helpers import cli, killed_run_resumes_bitwise, one_error_line

import aevb
from aevb.networks import heads

M1 = ["--dataset", "digits", "--latent-dim", "6", "--hidden", "64", "--optimizer", "adam",
      "--lr", "0.003", "--weight-prior-std", "none", "--epochs", "40", "--eval-points", "3",
      "--quiet"]
M2 = ["--dataset", "digits", "--conditional", "true", "--classifier", "32", "--labels", "50",
      "--latent-dim", "2", "--hidden", "32", "--optimizer", "adam", "--lr", "0.003",
      "--weight-prior-std", "none", "--epochs", "6", "--eval-points", "5",
      "--checkpoint-every", "2000", "--quiet"]


def test_the_normal_likelihood_is_scipys_gaussian_with_an_unbounded_mean():
    out = torch.randn(4, 2 * 5, dtype=torch.float64) * 3
    x = torch.randn(4, 5, dtype=torch.float64) * 4
    p = heads.LIKELIHOODS["normal"](out)
    mean, log_var = out.numpy()[:, :5], out.numpy()[:, 5:]
    expected = scipy.stats.norm.logpdf(x.numpy(), mean, np.exp(0.5 * log_var)).sum(1)
    assert np.allclose(p.log_prob(x).numpy(), expected, rtol=1e-12)
    assert np.allclose(p.mean.numpy(), mean)  # not squashed into (0, 1)


def _means_by_hand(m1_dir, x):
    """mu(x) of M1's tanh MLP encoder from its saved weights, in float64."""
    from safetensors.torch import load_file

    w = {k: v.double() for k, v in load_file(str(m1_dir / "model.safetensors")).items()
         if k.startswith("encoder.")}
    linears = sorted({k.rsplit(".", 1)[0] for k in w})
    h = x.double()
    for i, name in enumerate(linears):
        h = h @ w[f"{name}.weight"].t() + w[f"{name}.bias"]
        if i < len(linears) - 1:
            h = torch.tanh(h)
    return h[:, :h.shape[1] // 2]


@pytest.fixture(scope="module")
def m1(tmp_path_factory):
    run = tmp_path_factory.mktemp("m1") / "m1"
    r = cli("train", *M1, "--out", run)
    assert r.returncode == 0, r.stderr
    return run


def test_m2_trains_on_m1s_means_keeps_m1_and_resumes_bitwise(m1, tmp_path):
    from aevb.features import FOLDER, load_data

    reference = tmp_path / "ref"
    settings = [*M2, "--features", m1]
    assert cli("train", *settings, "--out", reference).returncode == 0
    info = aevb.rundir.checkpoint.read_config(reference)
    assert info["config"]["likelihood"] == "normal" and info["model"]["data_shape"] == [6]
    # the data it trained on: M1's encoder means of the digits, by hand in float64
    pixels = aevb.data.load_dataset("digits")
    features = load_data(info["config"], reference)
    assert torch.allclose(features.train.double(), _means_by_hand(m1, pixels.train), atol=1e-5)
    assert torch.equal(features.test_labels, pixels.test_labels)
    # the run keeps M1: evaluating, resuming and drawing work with the original gone
    assert (reference / FOLDER / "model.safetensors").read_bytes() == \
        (m1 / "model.safetensors").read_bytes()
    # it learns the classes from M1's means (a small M1 of the 8 x 8 digits, whose means a
    # logistic regression on these 50 labels classifies with 56% error)
    metrics = aevb.rundir.logs.read_metrics(reference)
    assert metrics[-1]["test_error"] < min(0.8, metrics[0]["test_error"] - 0.15)
    moved = tmp_path / "m1-moved"
    shutil.copytree(m1, moved)
    killed_run_resumes_bitwise([*M2, "--features", moved], reference, tmp_path / "run",
                               keys=("samples", "train_elbo", "test_elbo", "test_error"))
    shutil.rmtree(moved)
    r = cli("evaluate", tmp_path / "run", "--importance-samples", "20", "--limit", "50")
    assert r.returncode == 0 and "classification error of q(y|x)" in r.stdout, r.stderr
    # images of M1's size through M1's decoder; the report drew them at the end of training
    out = tmp_path / "3.png"
    assert cli("sample", tmp_path / "run", "--label", "3", "-n", "4", "--out", out) \
        .returncode == 0
    from PIL import Image

    assert Image.open(reference / "analogies.png").size[1] > 8 * 10  # 10 rows of 8x8 images
    assert Image.open(out).size[0] >= 4 * 8
    # the test images through M1 and M2 and back (reconstruct reads the images, not z1)
    assert cli("reconstruct", tmp_path / "run", "-n", "4", "--out", tmp_path / "r.png") \
        .returncode == 0
    assert "M1's features" in one_error_line(cli("export", reference, "--out", tmp_path / "x"))
    assert "M1's features" in one_error_line(cli("explore", reference))
    assert not (reference / "explorer.html").exists()


def test_scoring_a_users_images_goes_through_m1(m1, tmp_path):
    from aevb.rundir.evaluations import evaluate_run

    run = tmp_path / "m2"
    assert cli("train", *M2, "--epochs", "1", "--features", m1, "--out", run).returncode == 0
    pixels = aevb.data.load_dataset("digits")
    np.savez(tmp_path / "mine.npz", x=pixels.test[:30].numpy(), y=pixels.test_labels[:30])
    mine = evaluate_run(run, data=str(tmp_path / "mine.npz"), importance_samples=10)
    split = evaluate_run(run, importance_samples=10, limit=30)
    assert mine.log_likelihood == pytest.approx(split.log_likelihood, abs=1e-4)
    np.save(tmp_path / "wrong.npy", np.zeros((3, 10), dtype=np.float32))
    assert "M1 expects 64" in one_error_line(cli("evaluate", run, "--data",
                                                 tmp_path / "wrong.npy"))


@pytest.mark.parametrize("case", ["not-a-run", "no-label", "conditional-m1", "dataset"])
def test_bad_features_are_one_line(m1, tmp_path, case):
    features, settings = m1, list(M2)
    if case == "not-a-run":
        features = tmp_path
    elif case == "no-label":
        settings = M1
    elif case == "conditional-m1":
        features = tmp_path / "cvae"
        assert cli("train", "--dataset", "digits", "--conditional", "true", "--latent-dim",
                   "2", "--hidden", "8", "--samples", "200", "--quiet", "--out",
                   features).returncode == 0
    else:
        settings = [*M2[2:], "--dataset", "frey-face"]
    r = cli("train", *settings, "--features", features, "--out", tmp_path / "r")
    expected = {"not-a-run": "not a trained run directory", "no-label": "--conditional true",
                "conditional-m1": "conditions on a label", "dataset": "--dataset digits"}
    assert expected[case] in one_error_line(r)
    assert not (tmp_path / "r").exists()


def _moments_by_hand(m1_dir, x):
    """(mu(x), sigma(x)) of M1's q(z1|x) from its saved weights in float64: the encoder's last
    layer gives the mean and log sigma^2."""
    from safetensors.torch import load_file

    w = {k: v.double() for k, v in load_file(str(m1_dir / "model.safetensors")).items()
         if k.startswith("encoder.")}
    linears = sorted({k.rsplit(".", 1)[0] for k in w})
    h = x.double()
    for i, name in enumerate(linears):
        h = h @ w[f"{name}.weight"].t() + w[f"{name}.bias"]
        if i < len(linears) - 1:
            h = torch.tanh(h)
    j = h.shape[1] // 2
    return h[:, :j], torch.exp(0.5 * h[:, j:])


def test_feature_draws_are_gaussian_around_m1s_means_on_its_active_units(m1):
    """Kingma et al.'s M1 + M2 settings: the kept units are those whose means vary by more
    than Burda et al.'s 0.01 (checked by hand), and each training minibatch is one draw of
    N(mu(x), sigma(x)^2) (a KS test of the standardised draws against scipy's N(0, 1))."""
    from types import SimpleNamespace

    from aevb.features import active_units, load_m1, through_m1
    from aevb.training.loop import _minibatch

    pixels = aevb.data.load_dataset("digits")
    mean, std = _moments_by_hand(m1, pixels.train)
    kept = torch.nonzero(mean.var(0) > 0.01).flatten()
    data = through_m1(pixels, load_m1(m1), m1, draws=True, active=True)
    assert data.shape == (len(kept),) and data.train_spread.shape == data.train.shape
    assert torch.allclose(data.train.double(), mean[:, kept], atol=1e-5)
    assert torch.allclose(data.train_spread.double(), std[:, kept], rtol=1e-4)
    assert torch.allclose(data.test.double(), _moments_by_hand(m1, pixels.test)[0][:, kept],
                          atol=1e-5)
    # a constant unit is dropped; no unit left is one line
    means = torch.randn(500, 3)
    means[:, 1] = 0.5
    assert active_units(means, "m1").tolist() == [0, 2]
    with pytest.raises(aevb.AevbError, match="no active unit"):
        active_units(torch.ones(10, 3), "m1")
    # the loop's minibatches: draws around the rows, from the run's noise generator
    n = len(data.train)
    run = SimpleNamespace(progress=SimpleNamespace(samples=0, position=0), order=None,
                          config=SimpleNamespace(batch_size=n, binarize=False), total=10 * n,
                          generators={"order": torch.Generator().manual_seed(1),
                                      "noise": torch.Generator().manual_seed(2)})
    x, idx, size = _minibatch(run, data.train, None, data.train_spread)
    assert size == n
    z = ((x - data.train[idx]) / data.train_spread[idx]).flatten().numpy()
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    again = _minibatch(run, data.train, None, data.train_spread)[0]
    assert not torch.equal(again, x)  # a fresh draw for the same rows


def test_m1m2_with_feature_draws_resumes_bitwise_and_pictures_through_m1(m1, tmp_path):
    # 4 of M1's 6 units are active; the noisier draws learn more slowly than the means
    settings = [*M2, "--epochs", "20", "--features", m1, "--feature-draws", "true",
                "--active-features", "true"]
    reference = tmp_path / "ref"
    assert cli("train", *settings, "--out", reference).returncode == 0
    metrics = aevb.rundir.logs.read_metrics(reference)
    assert metrics[-1]["test_error"] < min(0.8, metrics[0]["test_error"] - 0.15)
    killed_run_resumes_bitwise(settings, reference, tmp_path / "run",
                               keys=("samples", "train_elbo", "test_elbo", "test_error"))
    # pictures decode M2's z1 of the kept units through M1's decoder (the rest at 0)
    assert cli("sample", reference, "--label", "3", "-n", "4", "--out", tmp_path / "3.png") \
        .returncode == 0
    r = cli("evaluate", reference, "--importance-samples", "20", "--limit", "50")
    assert r.returncode == 0 and "classification error of q(y|x)" in r.stdout, r.stderr


def test_feature_settings_without_features_are_one_line(tmp_path):
    r = cli("train", *M2, "--feature-draws", "true", "--out", tmp_path / "r")
    assert "need --features RUN" in one_error_line(r)
    assert not (tmp_path / "r").exists()
