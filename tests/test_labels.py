"""Labels (issue 29): labelled data in, the conditional VAE and M2's objectives against
independent float64 sums, balanced label draws, class-conditional samples recognised by a
classifier trained on real digits, and bad labels refused in one line."""
import math

import numpy as np
import pytest
import torch
from cli_helpers import cli, killed_run_resumes_bitwise, one_error_line

import aevb
from aevb.data.labels import balanced_subset, observed_labels
from aevb.maths import semi_supervised as ss
from aevb.maths.objectives import ESTIMATORS


def _model(classes=3, classifier=(7,), seed=0, std=0.5):
    config = aevb.ModelConfig((5,), latent_dim=2, hidden=(6,), classes=classes,
                              classifier_hidden=classifier)
    model = aevb.VAE(config).double()
    aevb.model.initialize(model, std, torch.Generator().manual_seed(seed))
    return model.double()


def _reference_bound(model, x, y, eps):
    """Estimator B of the conditional VAE by hand, float64: the encoder and decoder MLPs on
    [x, onehot(y)] and [z, onehot(y)], Bernoulli log-likelihood, closed-form KL to N(0, I)."""
    onehot = torch.eye(model.config.classes, dtype=torch.float64)[y]
    h = model.encoder.net(torch.cat([x, onehot], -1))
    mu, log_var = h.chunk(2, -1)
    z = mu + torch.exp(0.5 * log_var) * eps[0]
    logits = model.decoder.net(torch.cat([z, onehot], -1))
    log_px = (x * logits - torch.nn.functional.softplus(logits)).sum(-1)
    kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(-1)
    return log_px - kl


def test_m2_with_every_point_labelled_is_the_conditional_bound_plus_alpha_times_the_classifier():
    from aevb.algorithms.sgvb import LabelledStep
    from aevb.data.labels import Observed

    model = _model()
    g = torch.Generator().manual_seed(1)
    x = torch.bernoulli(torch.full((8, 5), 0.4, dtype=torch.float64), generator=g)
    y = torch.randint(3, (8,), generator=g)
    eps = torch.randn(1, 8, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        reference = _reference_bound(model, x, y, eps) - math.log(3)
        assert torch.allclose(ss.m2_objective(model, x, y, eps), reference, atol=1e-10)
        # the step's loss: -(mean J + alpha * mean log q(y|x)) on a labelled minibatch
        step = LabelledStep(model, torch.optim.SGD(model.parameters(), lr=0.0),
                            ESTIMATORS["B"], 1, Observed(y, 3, x), weight=0.7, binarize=False)
        log_q = torch.log_softmax(model.classifier.net(x), -1)[torch.arange(8), y]
        loss = step.forward(x, eps, y, x[:4], y[:4])
        assert torch.allclose(loss, -(reference.mean() + 0.7 * log_q[:4].mean()), atol=1e-10)


def test_the_unlabelled_bound_is_the_expected_labelled_bound_plus_the_entropy():
    model = _model(classes=4, classifier=(5, 5), seed=2)
    g = torch.Generator().manual_seed(3)
    x = torch.bernoulli(torch.full((6, 5), 0.5, dtype=torch.float64), generator=g)
    eps = torch.randn(1, 6, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        probs = torch.softmax(model.classifier.net(x), -1)  # [N, C]
        explicit = torch.zeros(6, dtype=torch.float64)
        for c in range(4):
            label = torch.full((6,), c)
            explicit += probs[:, c] * (_reference_bound(model, x, label, eps) - math.log(4))
        explicit -= (probs * probs.log()).sum(-1)
        assert torch.allclose(ss.unlabelled_bound(model, x, eps), explicit, atol=1e-10)
        # and M2's per-point objective takes it for the points without a label
        y = torch.tensor([0, -1, 2, -1, -1, 3])
        mixed = ss.m2_objective(model, x, y, eps)
        assert torch.allclose(mixed[y < 0], explicit[y < 0], atol=1e-10)


def test_every_class_at_once_has_the_densities_and_gradients_of_each_label_given():
    """class_bounds reads x once in the encoder's first layer (`labelled.EveryClass`): the
    bounds and the parameters' gradients are those of model.given(c) for each class c, and
    of the one-hot rows concatenated to x, in float64."""
    model = _model(classes=4, classifier=(5,), seed=4)
    g = torch.Generator().manual_seed(5)
    x = torch.bernoulli(torch.full((6, 5), 0.5, dtype=torch.float64), generator=g)
    eps = torch.randn(2, 6, 2, generator=g, dtype=torch.float64)
    per_class = ss.class_bounds(model, x, eps, ESTIMATORS["A"])  # [C, N]
    fast = torch.autograd.grad(per_class.sum(), list(model.parameters()), allow_unused=True)
    by_label = torch.stack([ESTIMATORS["A"](model.given(torch.full((6,), c)), x, eps)
                            for c in range(4)]) - math.log(4)
    slow = torch.autograd.grad(by_label.sum(), list(model.parameters()), allow_unused=True)
    assert torch.allclose(per_class, by_label, atol=1e-12)
    for a, b in zip(fast, slow):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-12)
    assert any(a is not None and a.abs().sum() > 0 for a in fast)


def test_the_marginal_of_importance_sampled_class_likelihoods_rises_to_the_exact_sum():
    """log p(x) = log sum_y p(y) p(x|y): the estimate with K draws per class lies below a
    float64 brute-force sum over a grid of z in expectation, and reaches it as K grows."""
    from aevb.evaluation.labelled import label_log_likelihood

    model = _model(classes=3, seed=4, std=0.25)  # q(z|x, y) near the posterior: IS converges
    x = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1]], dtype=torch.float64)
    grid = torch.linspace(-7, 7, 281, dtype=torch.float64)
    z = torch.cartesian_prod(grid, grid)  # [G, 2]
    with torch.no_grad():
        per_class = []
        for c in range(3):
            given = model.given(torch.tensor(c))
            joint = given.decode(z[:, None, :]).log_prob(x) + model.prior().log_prob(z)[:, None]
            per_class.append(torch.logsumexp(joint, 0) + 2 * torch.log(grid[1] - grid[0]))
        exact = torch.logsumexp(torch.stack(per_class), 0) - math.log(3)
        few = torch.stack([label_log_likelihood(model, x, None, 2, seed=s)
                           for s in range(200)]).mean(0)  # the K = 2 bound's expectation
        many = label_log_likelihood(model, x, None, 200000, seed=0)
    assert (few < exact - 0.01).all()
    assert torch.allclose(many, exact, atol=0.005)


def test_balanced_label_draws():
    y = torch.from_numpy(np.random.default_rng(0).integers(0, 10, 5000))
    for n in (100, 105, 3000):
        idx = balanced_subset(y, n, 10, seed=7)
        counts = torch.bincount(y[idx], minlength=10)
        assert len(idx) == len(torch.unique(idx)) == n
        assert int(counts.max() - counts.min()) <= 1
        assert torch.equal(idx, balanced_subset(y, n, 10, seed=7))
    assert not torch.equal(balanced_subset(y, 100, 10, 7), balanced_subset(y, 100, 10, 8))
    kept = observed_labels(y, 100, 10, seed=7)
    assert int((kept >= 0).sum()) == 100 and torch.equal(kept[kept >= 0], y[kept >= 0])


CVAE = ["--dataset", "digits", "--conditional", "true", "--latent-dim", "2", "--hidden", "128",
        "--optimizer", "adam", "--lr", "0.003", "--weight-prior-std", "none",
        "--eval-points", "5", "--checkpoint-every", "2000", "--quiet"]


def test_samples_of_each_class_are_recognised_by_a_classifier_of_real_digits(tmp_path):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    run = tmp_path / "cvae"
    assert cli("train", *CVAE, "--epochs", "40", "--out", run).returncode == 0
    model = aevb.load(run)
    digits = load_digits()
    reader = LogisticRegression(max_iter=2000).fit(digits.images.reshape(-1, 64) / 16.0,
                                                   digits.target)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z = torch.randn(50, 2, generator=gen)
        hits = [float((reader.predict(model.given(torch.tensor(k)).decode(z).mean.numpy())
                       == k).mean()) for k in range(10)]
    assert np.mean(hits) > 0.8 and min(hits) > 0.4, hits
    # the command draws them too, and refuses a class the model does not know
    assert cli("sample", run, "--label", "3", "-n", "4", "--out", tmp_path / "3.png") \
        .returncode == 0
    assert "out of range" in one_error_line(cli("sample", run, "--label", "10"))
    assert (run / "analogies.png").stat().st_size > 1000


def test_m2_trains_evaluates_with_its_error_and_resumes_bitwise(tmp_path):
    settings = [*CVAE, "--classifier", "64", "--labels", "50", "--epochs", "6"]
    reference = tmp_path / "ref"
    assert cli("train", *settings, "--out", reference).returncode == 0
    r = cli("evaluate", reference, "--importance-samples", "50", "--limit", "60")
    assert r.returncode == 0, r.stderr
    assert "classification error of q(y|x)" in r.stdout
    metrics = aevb.rundir.logs.read_metrics(reference)
    assert metrics[-1]["test_error"] < metrics[0]["test_error"] - 0.2
    killed_run_resumes_bitwise(settings, reference, tmp_path / "run",
                               keys=("samples", "train_elbo", "test_elbo", "test_error"))
    assert (reference / "explorer.html").exists()  # with a label selector (test_explorer.py)
    _exported_m2_matches_the_model(reference, tmp_path / "onnx")


def _exported_m2_matches_the_model(run, out):
    """M2's ONNX programs against the model in PyTorch: the classifier's logits, the decoder
    given y, and the scorer's log p(x|y), summed over the classes, against importance
    sampling per class with the same noise (`aevb evaluate`'s own path)."""
    ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from aevb.evaluation.importance import importance_log_likelihood

    assert cli("export", run, "--format", "onnx", "--out", out, "--importance-samples",
               "30").returncode == 0
    model = aevb.load(run)
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((5, 64), 0.3), generator=g)
    eps = torch.randn(30, 5, 2, generator=g)
    y = torch.tensor([0, 3, 9, 9, 1])

    def run_program(name, **inputs):
        session = ort.InferenceSession(str(out / f"{name}.onnx"),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, {k: v.numpy() for k, v in inputs.items()})

    with torch.no_grad():
        logits = model.classify(x).logits
        logits_y = model.given(y).decode(eps[0]).logits.detach()
        per_class = torch.stack([importance_log_likelihood(
            model.given(torch.full((5,), c)), x, 30, 0, noise=eps) for c in range(10)])
    marginal = torch.logsumexp(per_class, 0) - math.log(10)
    assert np.allclose(run_program("classifier", x=x)[0], logits.numpy(), atol=1e-4)
    onehot = torch.eye(10)[y]
    assert np.allclose(run_program("decoder", z=eps[0], y=onehot)[0], logits_y.numpy(),
                       atol=1e-4)
    scored = np.stack([run_program("scorer", x=x, y=torch.eye(10)[torch.full((5,), c)],
                                   eps=eps)[0] for c in range(10)])  # log p(x|c) [C, B]
    summed = np.logaddexp.reduce(scored, axis=0) - math.log(10)
    assert np.allclose(summed, marginal.numpy(), atol=1e-3)


def _class_folders(root, classes):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(
                root / name / f"{i}.png")
    return root


def test_a_folder_of_class_folders_is_labelled_in_sorted_order(tmp_path):
    folder = _class_folders(tmp_path / "pets", ["dog", "cat", "emu"])
    images, labels = aevb.data.read_labelled_folder(folder)
    assert images.shape == (12, 6, 6)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4  # cat, dog, emu
    data = aevb.data.load_dataset(str(folder), test_fraction=0.25)
    assert sorted(torch.cat([data.train_labels, data.test_labels]).tolist()) == labels.tolist()


@pytest.mark.parametrize("case", ["count", "negative", "fraction", "one-class", "none",
                                  "too-few", "flat-file"])
def test_bad_labels_are_one_line(tmp_path, case):
    x = np.random.default_rng(0).integers(0, 2, (30, 16), dtype=np.uint8)
    y = np.arange(30) % 3
    data = tmp_path / "d.npz"
    extra = []
    if case == "count":
        np.savez(data, x=x, y=y[:29])
    elif case == "negative":
        np.savez(data, x=x, y=y - 1)
    elif case == "fraction":
        np.savez(data, x=x, y=y + 0.5)
    elif case == "one-class":
        data = _class_folders(tmp_path / "one", ["only"])
    elif case == "none":
        np.save(data := tmp_path / "d.npy", x)
    elif case == "too-few":
        np.savez(data, images=x, labels=y)
        extra = ["--classifier", "8", "--labels", "2"]
    else:
        np.savez(data, images=x, labels=y)
        extra = ["--labels", "6"]
    r = cli("train", "--dataset", data, "--conditional", "true", "--hidden", "8",
            "--latent-dim", "2", "--samples", "40", "--quiet", *extra, "--out", tmp_path / "r")
    line = one_error_line(r)
    expected = {"count": "29 labels for 30", "negative": "0 or more",
                "fraction": "whole number", "one-class": "one class folder",
                "none": "has no labels", "too-few": "fewer than the 3 classes",
                "flat-file": "only M2"}[case]
    assert expected in line, line


def test_scoring_a_conditional_model_needs_labels_in_range(tmp_path):
    x = np.random.default_rng(0).integers(0, 2, (40, 16), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % 4)
    run = tmp_path / "run"
    assert cli("train", "--dataset", tmp_path / "d.npz", "--conditional", "true", "--hidden",
               "8", "--latent-dim", "2", "--samples", "200", "--quiet", "--out",
               run).returncode == 0
    np.savez(tmp_path / "far.npz", x=x[:5], y=np.array([0, 1, 2, 3, 4]))
    np.save(tmp_path / "bare.npy", x[:5])
    assert "label 4 is out of range" in one_error_line(
        cli("evaluate", run, "--data", tmp_path / "far.npz", "--importance-samples", "5"))
    assert "no labels" in one_error_line(
        cli("evaluate", run, "--data", tmp_path / "bare.npy", "--importance-samples", "5"))
    r = cli("evaluate", run, "--importance-samples", "20")
    assert r.returncode == 0 and "log p(x|y)" in r.stdout, r.stderr
