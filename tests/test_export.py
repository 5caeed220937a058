"""aevb export: the encoder, decoder and scorer as ONNX (run by ONNX Runtime) and torch.export
programs, against the PyTorch model they came from."""
import json

import numpy as np
import pytest
import torch
from cli_helpers import cli

from aevb.errors import AevbError
from aevb.maths.objectives import iwae_bound
from aevb.model import VAE, ModelConfig, initialize
from aevb.outputs.export import export_model

ort = pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")

KINDS = {  # name: ModelConfig arguments
    "mlp-bernoulli": ((28, 28), 5, (40,), "bernoulli"),
    "mlp-gaussian-deep-relu": ((28, 20), 4, (30, 20), "gaussian", "mlp", "relu"),
    "conv-bernoulli": ((28, 28), 3, (32,), "bernoulli", "conv", "relu"),
    "conv-gaussian-colour": ((3, 16, 12), 6, (24,), "gaussian", "conv", "elu"),
    # the VampPrior: the scorer runs the encoder on the pseudo-inputs too
    "mlp-bernoulli-vamp": ((28, 28), 5, (40,), "bernoulli", "mlp", "tanh", None, "vamp", 12),
}
K = 16


def _model(kind):
    model = VAE(ModelConfig(*KINDS[kind]))
    initialize(model, 0.1, torch.Generator().manual_seed(0))
    return model.eval()


def _inputs(model, n, seed):
    g = torch.Generator().manual_seed(seed)
    c = model.config
    x = torch.rand(n, c.data_dim, generator=g)
    if c.likelihood == "bernoulli":
        x = (x < 0.4).float()
    return x, torch.randn(n, c.latent_dim, generator=g), torch.randn(K, n, c.latent_dim,
                                                                     generator=g)


def _expected(model, x, z, eps):
    with torch.no_grad():
        q = model.encode(x).base_dist
        p = model.decode(z)
        base = getattr(p, "base_dist", p)
        decoded = {"mean": base.loc, "log_var": 2 * torch.log(base.scale)} \
            if isinstance(base, torch.distributions.Normal) else {"logits": base.logits}
        return {"encoder": {"mean": q.loc, "log_var": 2 * torch.log(q.scale)},
                "decoder": decoded,
                "scorer": {"log_px": iwae_bound(model, x, eps)}}


@pytest.fixture(scope="module", params=list(KINDS))
def onnx_export(request, tmp_path_factory):
    model = _model(request.param)
    out = tmp_path_factory.mktemp(request.param)
    export_model(model, out, "onnx", k=K)
    return model, out


@pytest.mark.parametrize("n", [1, 37])
def test_onnx_runtime_gives_torchs_outputs(onnx_export, n):
    model, out = onnx_export
    x, z, eps = _inputs(model, n, seed=n)
    expected = _expected(model, x, z, eps)
    feeds = {"encoder": {"x": x}, "decoder": {"z": z}, "scorer": {"x": x, "eps": eps}}
    for program, inputs in feeds.items():
        session = ort.InferenceSession(str(out / f"{program}.onnx"),
                                       providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        assert names == list(expected[program]), (program, names)
        got = session.run(None, {k: v.numpy() for k, v in inputs.items()})
        for name, value in zip(names, got):
            want = expected[program][name].detach().numpy()
            assert value.shape == want.shape
            np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-5 * max(1, abs(want).max()),
                                       err_msg=f"{program}.{name}")
    info = json.loads((out / "export.json").read_text())
    assert info["importance_samples"] == K
    assert info["programs"]["scorer"]["inputs"]["eps"] == [K, "B", model.config.latent_dim]


@pytest.mark.parametrize("kind", ["mlp-bernoulli", "conv-gaussian-colour"])
def test_torch_export_programs_reload_and_agree(kind, tmp_path):
    model = _model(kind)
    export_model(model, tmp_path, "pt2", k=K)
    for n in (1, 37):
        x, z, eps = _inputs(model, n, seed=100 + n)
        expected = _expected(model, x, z, eps)
        for program, inputs in (("encoder", (x,)), ("decoder", (z,)), ("scorer", (x, eps))):
            loaded = torch.export.load(str(tmp_path / f"{program}.pt2")).module()
            got = loaded(*inputs)
            got = got if isinstance(got, tuple) else (got,)
            for value, want in zip(got, expected[program].values()):
                torch.testing.assert_close(value, want, rtol=1e-5, atol=1e-5)


def test_the_scorer_with_passed_noise_is_importance_sampling(onnx_export):
    """The scorer's log p(x) is aevb.evaluation.evaluate's importance_log_likelihood given the same
    noise (in batches of 100, as `aevb evaluate --noise` runs it)."""
    from aevb.evaluation.evaluate import importance_log_likelihood as evaluate_ll

    model, out = onnx_export
    x, _, eps = _inputs(model, 37, seed=7)
    session = ort.InferenceSession(str(out / "scorer.onnx"), providers=["CPUExecutionProvider"])
    (log_px,) = session.run(None, {"x": x.numpy(), "eps": eps.numpy()})
    reference = evaluate_ll(model, x, K, seed=0, noise=eps)
    np.testing.assert_allclose(log_px, reference.numpy(), rtol=1e-5, atol=1e-4)


def test_export_never_overwrites_and_refuses_unknown_formats(tmp_path):
    model = _model("mlp-bernoulli")
    export_model(model, tmp_path, "pt2", k=4)
    with pytest.raises(AevbError, match="exists; choose another --out"):
        export_model(model, tmp_path, "pt2", k=4)
    with pytest.raises(AevbError, match="format must be one of onnx, pt2"):
        export_model(model, tmp_path / "x", "tflite")


_cli = cli


def test_the_command_exports_a_run_and_scores_like_evaluate(digits_run, tmp_path):
    out = tmp_path / "onnx"
    r = _cli("export", str(digits_run), "--out", str(out), "--importance-samples", "64")
    assert r.returncode == 0, r.stderr
    assert "encoder.onnx, decoder.onnx, scorer.onnx and export.json" in r.stdout
    # the README's example: score data with onnxruntime and numpy, with noise from numpy ...
    data = (np.random.default_rng(0).random((25, 64)) < 0.3).astype(np.float32)
    np.save(tmp_path / "data.npy", data)
    eps = np.random.default_rng(1).standard_normal((64, 25, 4)).astype(np.float32)
    np.save(tmp_path / "eps.npy", eps)
    session = ort.InferenceSession(str(out / "scorer.onnx"), providers=["CPUExecutionProvider"])
    (log_px,) = session.run(["log_px"], {"x": data, "eps": eps})
    # ... and `aevb evaluate --per-example` with the same noise gives the same numbers
    r = _cli("evaluate", str(digits_run), "--data", str(tmp_path / "data.npy"),
             "--importance-samples", "64", "--noise", str(tmp_path / "eps.npy"),
             "--per-example", str(tmp_path / "scores.npy"))
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(log_px, np.load(tmp_path / "scores.npy"), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--format", "tflite"], "format must be one of onnx, pt2"),
    (["--importance-samples", "0"], "importance samples must be at least 1"),
])
def test_bad_export_requests_are_one_line_errors(digits_run, tmp_path, args, message):
    r = _cli("export", str(digits_run), "--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("aevb: error: ") and message in line


def test_a_missing_or_half_written_run_is_refused(digits_run, tmp_path):
    import shutil

    r = _cli("export", str(tmp_path / "nothing"))
    assert r.returncode == 2 and r.stderr.startswith("aevb: error:")
    half = tmp_path / "half"
    shutil.copytree(digits_run, half)
    weights = half / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a copy cut short
    r = _cli("export", str(half))
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("aevb: error:") and "model.safetensors" in line
    assert not (half / "export-onnx").exists()
