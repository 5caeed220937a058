"""A hostile user against options, data files, estimators, exports and the kernel cache.

Each test names the class of docs/reliability.md ("Hostile use") it checks; the case lists
are the counts that page gives.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli, one_error_line

import aevb
from aevb import files
from aevb.errors import AevbError

TINY = ["--dataset", "digits", "--latent-dim", "3", "--hidden", "32", "--samples", "200",
        "--eval-points", "1", "--quiet"]

BAD_TRAIN_OPTIONS = [["--seed", "-1"], ["--seed", "1e30"], ["--samples", "1e30"],
                     ["--mc-samples", "1000000"], ["--hidden", "2000000000"],
                     ["--epochs", "1e-9"], ["--dataset", ""], ["--batch-size", "1e30"],
                     ["--latent-dim", "1e12"], ["--epochs", "nan"]]


@pytest.mark.parametrize("options", BAD_TRAIN_OPTIONS, ids=lambda o: " ".join(o))
def test_absurd_training_options_are_one_line(tmp_path, options):
    """Class "options": 10 cases, each one line and exit 2, and no run directory made."""
    out = tmp_path / "run"
    args = [a for a in TINY if a not in ("--samples", "200")] if "--samples" in options or \
        "--epochs" in options else TINY
    one_error_line(cli("train", *args, *options, "--out", out))
    assert not out.exists()


def test_a_test_split_of_one_point_trains_to_the_end(tmp_path):
    """Class "options": a test split of one point with N_z > 2 (its latent picture, 1 case)."""
    x = np.random.default_rng(0).integers(0, 2, (12, 16), dtype=np.uint8)
    np.save(tmp_path / "tiny.npy", x)
    r = cli("train", "--dataset", tmp_path / "tiny.npy", "--latent-dim", "4", "--hidden", "8",
            "--samples", "50", "--eval-points", "1", "--test-fraction", "0.05", "--quiet",
            "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "latent.png").exists()


@pytest.fixture()
def noise_files(tmp_path):
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    np.save(tmp_path / "nan.npy", np.full((2, 3, 4), np.nan, dtype=np.float32))
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    return tmp_path


@pytest.mark.parametrize("options", [["--noise", "strings.npy"], ["--noise", "nan.npy"],
                                     ["--noise", "junk.npy"], ["--noise", "missing.npy"],
                                     ["--method", "hmc-harmonic", "--importance-samples", "2"],
                                     ["--importance-samples", "0"], ["--limit", "-3"],
                                     ["--batch-size", "0"]],
                         ids=["strings", "nan", "junk", "missing", "hmc-k2", "k0", "limit",
                              "batch"])
def test_absurd_evaluation_options_are_one_line(digits_run, noise_files, options):
    """Class "options" and "impossible estimates": 8 cases of `aevb evaluate`."""
    options = [str(noise_files / o) if o.endswith(".npy") else o for o in options]
    line = one_error_line(cli("evaluate", digits_run, "--limit", "2", *options))
    if "nan.npy" in options[-1]:
        assert "NaN" in line and "damaged" not in line
    if "hmc-harmonic" in options:
        assert "N_z + 2" in line


def test_an_impossible_estimate_is_an_error(digits_run, monkeypatch):
    """Class "impossible estimates": log p(x) > 0 nats for binary data is refused however it
    came about (1 case: the estimate replaced by one above 0)."""
    from aevb.evaluation import evaluate
    from aevb.rundir import evaluations

    real = evaluate.evaluate

    def above_zero(*args, **kw):
        result = real(*args, **kw)
        per = result.per_example + 5.0 - result.per_example.max()
        return evaluate.Evaluation(**{**result.__dict__, "per_example": per,
                                      "log_likelihood": float(per.mean())})

    monkeypatch.setattr(evaluations, "evaluate", above_zero)
    with pytest.raises(AevbError, match="log p\\(x\\) <= 0"):
        evaluations.evaluate_run(digits_run, importance_samples=4, limit=3)


def test_hmc_harmonic_with_enough_draws_is_a_log_likelihood(digits_run):
    """The appendix D estimate at K >= N_z + 2 is a valid number below 0 (1 case)."""
    result = aevb.rundir.evaluations.evaluate_run(digits_run, method="hmc-harmonic", importance_samples=8,
                                    limit=4)
    assert np.all(result.per_example < 0) and np.all(np.isfinite(result.per_example))


def test_a_large_k_keeps_its_noise_bounded(digits_run, monkeypatch):
    """Class "resource limits": above NOISE_ELEMENTS the noise is drawn chunk by chunk; with
    the limit lowered the estimate agrees with the whole draw's to Monte Carlo error and
    never holds all K draws (1 case)."""
    from aevb.evaluation import evaluate

    model = aevb.load(digits_run)
    x = aevb.rundir.evaluations.test_set_of_run(digits_run)[:3]
    whole = evaluate.importance_log_likelihood(model, x, 4000, seed=1)
    sizes = []

    def spy(xb, eps):  # the estimator's declared log-weights input
        sizes.append(eps.shape[0])
        return aevb.maths.objectives.log_weights(model, xb, eps)

    monkeypatch.setattr(aevb.evaluation.importance, "NOISE_ELEMENTS", 1000)
    monkeypatch.setattr(aevb.evaluation.importance, "CHUNK_ELEMENTS", 100 * 100 * 64)  # k_chunk = 100
    chunked = evaluate.importance_log_likelihood(model, x, 4000, seed=1, log_weights=spy)
    assert max(sizes) == 100 and sum(sizes) == 4000
    np.testing.assert_allclose(chunked.numpy(), whole.numpy(), atol=0.05)


# ----------------------------------------------------------------------------------- data

def _folder(tmp_path, name, images):
    from PIL import Image

    folder = tmp_path / name
    folder.mkdir()
    for i, image in enumerate(images):
        (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(
            folder / f"{i:03d}.{'jpg' if getattr(image, 'mode', '') == 'CMYK' else 'png'}")
    return folder


def test_sixteen_bit_images_are_read_at_their_depth(tmp_path):
    """Class "silent conversions": 16-bit grey PNGs give value / 65535, never clipped (1 case,
    the whole pipeline: read, train, the data's range in config.json)."""
    levels = np.random.default_rng(0).integers(0, 65536, (30, 8, 8)).astype(np.uint16)
    folder = _folder(tmp_path, "deep", list(levels))
    x = aevb.data.read_image_folder(folder)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, levels / 65535.0, atol=1e-7)
    r = cli("train", "--dataset", folder, "--latent-dim", "2", "--hidden", "8", "--samples",
            "100", "--eval-points", "1", "--quiet", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    low, high = json.loads((tmp_path / "run" / "config.json").read_text())["data"]["typical_range"]
    assert high < 1.0 - 1e-3 or low > 1e-3  # not 99.8% of pixels at 255


def test_images_that_conversion_would_change_are_refused(tmp_path):
    """Class "silent conversions": 4 modes (RGBA and LA with transparency, a palette with a
    transparent colour, CMYK); an opaque RGBA image is read (1 more case)."""
    from PIL import Image

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 128
    palette = Image.fromarray(np.zeros((8, 8), np.uint8), "L").convert("P")
    palette.info["transparency"] = 0
    cmyk = Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).convert("CMYK")
    la = Image.fromarray(np.zeros((8, 8, 2), np.uint8), "LA")
    for name, image in (("rgba", rgba), ("la", la), ("palette", palette), ("cmyk", cmyk)):
        folder = _folder(tmp_path, name, [image])
        with pytest.raises(AevbError, match="silently|transparency"):
            aevb.data.read_image_folder(folder)
    rgba[..., 3] = 255
    assert aevb.data.read_image_folder(_folder(tmp_path, "opaque", [rgba])).shape == (1, 8, 8)


def test_an_image_past_the_decompression_bomb_limit_is_one_line(tmp_path):
    """Class "messages": 100 megapixels, past Pillow's warning limit (1 case)."""
    from PIL import Image

    folder = tmp_path / "big"
    folder.mkdir()
    Image.new("L", (10_000, 10_000)).save(folder / "big.png")
    assert "pixels" in one_error_line(cli("train", "--dataset", folder, "--quiet",
                                          "--out", tmp_path / "run"))


@pytest.mark.parametrize("labels", [np.array(list("abcdefghij")),
                                    np.array([1, None] * 5, dtype=object),
                                    np.arange(20).reshape(10, 2), np.full(10, 0.5)],
                         ids=["strings", "objects", "2-d", "fractions"])
def test_bad_labels_are_one_line(tmp_path, labels):
    """Class "data": 4 kinds of .npz labels."""
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 4, 4), np.uint8), y=labels)
    one_error_line(cli("train", "--dataset", tmp_path / "d.npz", "--quiet",
                       "--out", tmp_path / "run"))


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "run"
    cfg = aevb.resolve(dataset="digits", network="conv", activation="relu", hidden=(16,),
                       latent_dim=2, samples=200, eval_points=1, optimizer="adam", lr=1e-3,
                       weight_prior_std=None, out=str(out), download=False)
    return aevb.train(cfg, progress=False)


def test_shapes_are_checked_not_only_sizes(conv_run, digits_run, tmp_path):
    """Class "silent wrong numbers": 4 x 16 images for an 8 x 8 conv model, and for an MLP;
    a flat [N, 64] array is an MLP's data (3 cases)."""
    np.save(tmp_path / "wide.npy", np.zeros((5, 4, 16), np.uint8))
    np.save(tmp_path / "flat.npy", np.zeros((5, 64), np.uint8))
    for run in (conv_run, digits_run):
        assert "shape [8, 8]" in one_error_line(cli("evaluate", run, "--data",
                                                    tmp_path / "wide.npy",
                                                    "--importance-samples", "2"))
    assert cli("evaluate", digits_run, "--data", tmp_path / "flat.npy",
               "--importance-samples", "2").returncode == 0


# ------------------------------------------------------------------ writes that can fail

def _full_disk(monkeypatch):
    import errno

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", fsync)


@pytest.mark.parametrize("fmt", ["pt2", pytest.param("onnx", marks=pytest.mark.slow)])
def test_a_failed_export_leaves_nothing_that_blocks_a_retry(digits_run, tmp_path,
                                                            monkeypatch, fmt):
    """Class "partial files": 2 formats on a full disk, then the retry (2 cases)."""
    from aevb.outputs.export import export_run

    out = tmp_path / "export"
    with monkeypatch.context() as m:
        _full_disk(m)
        with pytest.raises(AevbError, match="No space left"):
            export_run(digits_run, fmt, out, k=4)
    assert not out.exists() or not [p for p in out.iterdir()]
    assert sorted(p.name for p in export_run(digits_run, fmt, out, k=4).values()) == \
        [f"decoder.{fmt}", f"encoder.{fmt}", f"scorer.{fmt}"]


@pytest.mark.slow
def test_onnx_export_prints_one_line(digits_run, tmp_path):
    """Class "messages": no torch chatter around the result (1 case)."""
    r = cli("export", digits_run, "--out", tmp_path / "e", "--importance-samples", "4")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1 and r.stderr.strip() == ""


def test_user_outputs_are_created_exclusively(digits_run, tmp_path, monkeypatch):
    """Class "partial files" and "file-system safety": --per-example and explore --out
    through dangling symlinks, explore --out on a full disk (3 cases)."""
    dangling = tmp_path / "p.npy"
    dangling.symlink_to(tmp_path / "target.npy")
    one_error_line(cli("evaluate", digits_run, "--per-example", dangling,
                       "--importance-samples", "2", "--limit", "2"))
    page = tmp_path / "page.html"
    page.symlink_to(tmp_path / "target.html")
    one_error_line(cli("explore", digits_run, "--out", page))
    assert not (tmp_path / "target.npy").exists() and not (tmp_path / "target.html").exists()
    with monkeypatch.context() as m:
        _full_disk(m)
        with pytest.raises(AevbError):
            aevb.outputs.explorer.write_explorer(digits_run, tmp_path / "full.html")
    assert not (tmp_path / "full.html").exists() and not list(tmp_path.glob(".full.html*"))


# ------------------------------------------------------------------------- kernel cache

@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from aevb.native import library

    library._LOADED.clear()
    yield tmp_path / "cache" / "aevb" / "kernels"
    library._LOADED.clear()


def _load_in_fresh_process(env_cache):
    code = "from aevb.native import library as k; print(k.load() is not None, k.unavailable_reason())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "XDG_CACHE_HOME": str(env_cache)}, timeout=300)


@pytest.mark.parametrize("size", [0, 1000, 20000, -1])
def test_a_truncated_cached_library_is_rebuilt(lib, cache, size):
    """Class "crashes": a cut library in the cache (4 sizes: 0, 1000 and 20000 bytes, all
    but its last byte) is rebuilt, never mapped (which ended every later run with SIGBUS)."""
    root = cache.parent.parent
    first = _load_in_fresh_process(root)
    assert first.stdout.startswith("True"), first.stdout + first.stderr
    (built,) = cache.glob("kernels-*.so")
    whole = built.stat().st_size
    with open(built, "r+b") as f:
        f.truncate(size % whole)
    again = _load_in_fresh_process(root)
    assert again.returncode == 0 and again.stdout.startswith("True"), again.stderr
    assert built.stat().st_size == whole


def test_unsafe_cache_paths_are_refused(lib, cache, tmp_path):
    """Class "cache safety": 4 cases (a cache folder that is a symlink; a symlink on the way
    owned by another user; a parent others may write; a parent its group may write)."""
    from aevb.native import cache as cache_folder

    elsewhere = tmp_path / "world"
    elsewhere.mkdir()
    cache.parent.mkdir(parents=True)
    cache.symlink_to(elsewhere)
    assert "symbolic link" in cache_folder.ready(cache)
    cache.unlink()
    link = tmp_path / "linked"
    link.symlink_to(tmp_path / "cache")
    if os.getuid() == 0:
        os.lchown(link, 12345, 12345)
        assert "another user" in cache_folder.ready(link / "aevb" / "kernels")
    for mode in (0o777, 0o775):
        open_parent = tmp_path / f"open{mode:o}"
        open_parent.mkdir()
        open_parent.chmod(mode)
        assert "may be written" in cache_folder.ready(open_parent / "aevb" / "kernels")
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert cache_folder.ready(sticky / "aevb" / "kernels") is None


def test_a_hanging_compiler_is_ended_with_its_children(cache, tmp_path, monkeypatch):
    """Class "cache safety": a $CC that never returns is ended within the time limit, with
    the process it started (1 case)."""
    from aevb.native import library

    marker = tmp_path / "child.pid"
    cc = tmp_path / "cc"
    cc.write_text(f"#!/bin/sh\nsleep 600 &\necho $! > {marker}\nwait\n")
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setenv("AEVB_KERNELS", "1")  # the build is what is tested, in both CI passes
    monkeypatch.setattr(library, "BUILD_TIMEOUT_S", 2.0)
    start = time.time()
    assert library.load() is None
    assert time.time() - start < 30
    assert "did not" in library.unavailable_reason()
    child = int(marker.read_text())
    time.sleep(0.2)
    try:  # gone, or a zombie that only waits for init to reap it: no longer running
        state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z", "X"), state


# ------------------------------------------------------------------------------ messages

def test_a_dead_torchrun_peer_is_one_line(monkeypatch, capsys):
    """Class "messages": a torch.distributed failure under torchrun (1 case)."""
    from aevb import cli as command

    def peer_died(args):
        raise RuntimeError("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer\nmore")

    monkeypatch.setenv("WORLD_SIZE", "2")
    # In-process: without the process-wide float settings (flush-to-zero would stay on for
    # the tests after this one).
    monkeypatch.setattr(command, "_set_up_numerics", lambda: None)
    monkeypatch.setitem(command.COMMANDS, "report", peer_died)
    assert command.main(["report", "x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another process of this torchrun group stopped" in err[0]


@pytest.mark.slow
def test_resume_records_the_engine_it_continues_on(lib, tmp_path):
    """Class "messages": a run started on the native step and resumed with AEVB_KERNELS=0
    says in config.json which engine it trains on now (1 case)."""
    out = tmp_path / "run"
    r = cli("train", *[a for a in TINY if a not in ("--samples", "200")], "--samples", "300",
            "--eval-points", "1", "--engine", "native", "--out", out)
    assert r.returncode == 0, r.stderr
    info = json.loads((out / "config.json").read_text())
    assert info["engine"]["name"] == "native", info["engine"]
    info["config"]["samples"] = info["total_samples"] = 400
    aevb.rundir.checkpoint.write_config(out, info)
    r = cli("train", "--resume", out, "--quiet", env={**os.environ, "AEVB_KERNELS": "0"})
    assert r.returncode == 0, r.stderr
    info = json.loads((out / "config.json").read_text())
    assert info["engine"]["name"] != "native"
    assert info["engine_history"][0]["name"] == "native"
    assert info["engine_history"][0]["until_samples"] == 300
