"""`aevb train` from the shell: results on success; one line and status 2 on bad input."""
import os
import subprocess
import sys

import pytest


def aevb(*args, env=None, cwd=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "aevb", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


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
    (["--latent-dim", "abc"], "invalid int"),
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
