"""`aevb train` from the shell: results on success; one line and status 2 on bad input."""
import os

import pytest
from cli_helpers import cli


def aevb(*args, env=None, cwd=None):
    return cli(*args, env=dict(os.environ, **(env or {})), cwd=cwd, timeout=300)


def test_train_on_digits_says_where_the_results_are(tmp_path):
    out = tmp_path / "run"
    r = aevb("train", "--epochs", "2", "--hidden", "16", "--latent-dim", "2", "--out", str(out),
             "--quiet")
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout and "test bound" in r.stdout
    assert (out / "model.safetensors").exists()


def _bad(r):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("aevb: error:"), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


@pytest.mark.parametrize("args, needle", [
    (["--dataset", "imagenet"], "unknown dataset"),
    (["--preset", "cifar-paper"], "unknown preset"),
    (["--latent-dim", "0"], "latent dimension"),
    (["--latent-dim", "-3"], "latent dimension"),
    (["--latent-dim", "abc"], "not a number"),
    (["--latent-dim", "2.5"], "not a whole number"),
    (["--samples", "lots"], "not a number"),
    (["--lr", "fast"], "invalid float"),
    (["--hidden", "5x"], "sizes"),
    (["--samples", "10", "--epochs", "1"], "not both"),
    (["--bogus-flag", "1"], "unrecognized"),
])
def test_bad_options(args, needle, tmp_path):
    assert needle in _bad(aevb("train", *args, "--out", str(tmp_path / "r")))


def test_missing_data_file(tmp_path):
    env = {"HOME": str(tmp_path), "AEVB_DATA": ""}
    line = _bad(aevb("train", "--dataset", "mnist", "--download", "false",
                     "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"), env=env))
    assert "not found" in line


def test_corrupt_data_file(tmp_path):
    (tmp_path / "frey").mkdir()
    (tmp_path / "frey" / "frey_rawface.mat").write_bytes(b"not a mat file")
    line = _bad(aevb("train", "--dataset", "frey-face", "--data-dir", str(tmp_path),
                     "--out", str(tmp_path / "r"), env={"HOME": str(tmp_path)}))
    assert "SHA-256" in line


def test_missing_user_file(tmp_path):
    assert "no such file" in _bad(aevb("train", "--dataset", str(tmp_path / "x.npy")))


def test_output_directory_holding_another_run(digits_run):
    line = _bad(aevb("train", "--epochs", "1", "--out", str(digits_run)))
    assert "already holds a run" in line


def test_evaluate_json_and_per_example(digits_run, tmp_path):
    import json

    import numpy as np

    per = tmp_path / "ll.npy"
    r = aevb("evaluate", str(digits_run), "--importance-samples", "64", "--json",
             "--per-example", str(per))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"split", "n", "elbo", "log_likelihood", "importance_samples", "seconds"} <= set(out)
    assert out["split"] == "test" and out["importance_samples"] == 64
    values = np.load(per)
    assert values.shape == (out["n"],)
    assert abs(values.astype(np.float64).mean() - out["log_likelihood"]) < 1e-9
    assert out["log_likelihood"] < 0
    assert "exists" in _bad(aevb("evaluate", str(digits_run), "--per-example", str(per)))


def test_evaluate_scores_a_users_array(digits_run, tmp_path):
    import json

    import numpy as np
    from sklearn.datasets import load_digits

    images = (load_digits().images[:20] * 255 / 16).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "digits.npy", images)
    np.save(tmp_path / "noise.npy", noise)
    scores = {}
    for name in ("digits", "noise"):
        r = aevb("evaluate", str(digits_run), "--data", str(tmp_path / f"{name}.npy"),
                 "--importance-samples", "32", "--json")
        assert r.returncode == 0, r.stderr
        scores[name] = json.loads(r.stdout)
        assert scores[name]["split"] == "data" and scores[name]["n"] == 20
    # Anomaly scoring: random pixels are far less likely under a digits model than digits.
    assert scores["noise"]["log_likelihood"] < scores["digits"]["log_likelihood"] - 10
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5, 5), dtype=np.uint8))
    assert "model expects 64" in _bad(aevb("evaluate", str(digits_run), "--data",
                                           str(tmp_path / "wrong.npy")))


@pytest.mark.parametrize("args, needle", [
    (["--importance-samples", "0"], "at least 1"),
    (["--split", "valid"], "invalid choice"),
    (["--per-example", "x.txt"], ".npy"),
])
def test_evaluate_bad_options(digits_run, args, needle):
    assert needle in _bad(aevb("evaluate", str(digits_run), *args))


def test_commands_on_a_directory_without_a_run(tmp_path):
    for command in ("evaluate", "manifold", "report"):
        assert "not a run directory" in _bad(aevb(command, str(tmp_path)))


def test_evaluate_with_the_appendix_d_estimator(digits_run):
    import json

    r = aevb("evaluate", str(digits_run), "--method", "hmc-harmonic", "--importance-samples",
             "20", "--limit", "30", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["method"] == "hmc-harmonic" and out["n"] == 30
    # Same model, same points: close to the importance-sampled estimate.
    r = aevb("evaluate", str(digits_run), "--importance-samples", "500", "--limit", "30",
             "--json")
    assert abs(json.loads(r.stdout)["log_likelihood"] - out["log_likelihood"]) < 1.0


def test_every_train_option_has_help_text():
    from dataclasses import fields

    from aevb.config import TrainConfig, field_help

    assert set(field_help()) == {f.name for f in fields(TrainConfig)}
    r = aevb("train", "--help")
    assert r.returncode == 0 and "N_z, the dimension of z" in r.stdout


def test_every_integer_option_takes_scientific_notation():
    """One converter for every integer option: 1e3 is accepted wherever an integer is."""
    from dataclasses import fields

    from aevb.cli import build_parser
    from aevb.config import TrainConfig

    parser = build_parser()
    int_fields = [f.name for f in fields(TrainConfig) if str(f.type).startswith("int")]
    assert {"checkpoint_every", "eval_examples", "latent_dim", "batch_size"} <= set(int_fields)
    for name in int_fields:
        args = parser.parse_args(["train", f"--{name.replace('_', '-')}", "1e3"])
        assert getattr(args, name) == 1000, name
    for command in (["evaluate", "RUN", "--importance-samples", "1e3", "--batch-size", "1e2",
                     "--limit", "1e3"], ["sample", "RUN", "-n", "1e2", "--seed", "1e1"],
                    ["reproduce", "fig3", "--budget", "2e4", "--likelihood-examples", "1e2"]):
        parsed = vars(parser.parse_args(command))
        assert all(isinstance(v, int) for k, v in parsed.items()
                   if k in ("importance_samples", "batch_size", "limit", "n", "seed", "budget",
                            "likelihood_examples")), parsed
