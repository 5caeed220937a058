"""Correctness and safety: data scaling, checksums, checkpoints that lie about their
sizes, the compiled path's memory safety, the kernels' build cache, and file-system failures.
Each test here failed before its fix."""
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from cli_helpers import cli as _cli  # noqa: E402
from cli_helpers import one_error_line as _one_error_line
from safetensors.torch import load_file, save_file

import aevb
from aevb import files
from aevb.errors import AevbError
from aevb.model import VAE, ModelConfig, initialize
from aevb.native import calls
from aevb.native import library as kernels
from aevb.native import step as native
from aevb.rundir import checkpoint, folder, integrity, logs


def _snapshot(run):
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())
            if p.is_file() and not p.name.endswith(".lock")}


# ------------------------------------------------------------------------- data scaling

@pytest.fixture(scope="module")
def binarized_run(tmp_path_factory, data_dir):
    """A small model of statically binarized MNIST (784 pixels), trained for seconds."""
    out = tmp_path_factory.mktemp("bin") / "run"
    cfg = aevb.resolve(dataset="binarized-mnist", latent_dim=5, hidden=(32,), samples=3000,
                       eval_points=1, eval_examples=100, train_examples=2000, out=str(out),
                       data_dir=str(data_dir), download=False)
    return aevb.train(cfg, progress=False)


def test_binary_uint8_scores_as_float32(binarized_run, data_dir, tmp_path):
    """The statically binarized test set scores the same stored as uint8 0/1 or as float32
    (it was divided by 255 and scored as near-blank images: -30 against -100 nats)."""
    from aevb.data import BINARIZED_FILES, locate, read_amat

    test = read_amat(locate(BINARIZED_FILES["test"], data_dir, download=False))[:40]
    np.save(tmp_path / "u8.npy", test.astype(np.uint8))
    np.save(tmp_path / "f32.npy", test.astype(np.float32))
    scores = {}
    for name in ("u8", "f32"):
        r = _cli("evaluate", str(binarized_run), "--data", str(tmp_path / f"{name}.npy"),
                 "--importance-samples", "20", "--json",
                 "--per-example", str(tmp_path / f"{name}-scores.npy"))
        assert r.returncode == 0, r.stderr
        assert "warning" not in r.stderr, r.stderr
        scores[name] = np.load(tmp_path / f"{name}-scores.npy")
    np.testing.assert_array_equal(scores["u8"], scores["f32"])
    assert scores["f32"].mean() < -60  # real digits, not blank images


def test_binary_uint8_trains_and_loads_as_binary(tmp_path):
    from aevb.data import load_dataset, load_user_data

    x = (np.random.default_rng(0).random((50, 6, 6)) < 0.4).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x)
    folder = tmp_path / "png"
    folder.mkdir()
    from PIL import Image

    for i, image in enumerate(x):
        Image.fromarray(image, mode="L").save(folder / f"{i:02d}.png")
    for source in ("x.npy", "x.npz", "png"):
        data = load_dataset(str(tmp_path / source), test_fraction=0.2)
        assert data.is_binary and float(data.train.max()) == 1.0, source
        np.testing.assert_array_equal(load_user_data(str(tmp_path / source)).numpy(),
                                      x.reshape(50, -1).astype(np.float32))
    grey = x * 200  # grey levels stay grey levels
    np.save(tmp_path / "grey.npy", grey)
    assert float(load_user_data(str(tmp_path / "grey.npy")).max()) == pytest.approx(200 / 255)


def test_evaluate_warns_when_data_lies_outside_the_training_range(binarized_run, data_dir,
                                                                   tmp_path):
    from aevb.data import BINARIZED_FILES, locate, read_amat

    test = read_amat(locate(BINARIZED_FILES["test"], data_dir, download=False))[:20]
    np.save(tmp_path / "scaled.npy", test / 255.0)  # the old bug's near-blank images
    r = _cli("evaluate", str(binarized_run), "--data", str(tmp_path / "scaled.npy"),
             "--importance-samples", "5")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("aevb: warning:")]
    assert len(warnings) == 1 and "outside the training data's range" in warnings[0], r.stderr


# ----------------------------------------------------------------------------- checksums

def _copy(run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def test_damaged_weights_are_refused(digits_run, tmp_path):
    run = _copy(digits_run, tmp_path)
    weights = bytearray((run / "model.safetensors").read_bytes())
    weights[-3000:] = os.urandom(3000)  # the header still parses
    (run / "model.safetensors").write_bytes(bytes(weights))
    line = _one_error_line(_cli("evaluate", str(run), "--importance-samples", "2"))
    assert "model.safetensors" in line and "SHA-256" in line
    r = _cli("train", "--resume", str(run))
    assert "SHA-256" in _one_error_line(r)


def test_every_file_of_a_run_is_recorded_and_verified(digits_run):
    names = integrity.recorded_names(digits_run)
    on_disk = sorted(p.name for p in digits_run.iterdir()
                     if p.is_file() and not p.name.startswith(".") and p.name != "manifest.json")
    assert names == on_disk
    integrity.verify(digits_run, names)


def test_a_log_may_grow_but_not_change(digits_run, tmp_path):
    run = _copy(digits_run, tmp_path)
    metrics = run / "metrics.jsonl"
    original = metrics.read_bytes()
    metrics.write_bytes(original + b'{"samples": 1')  # a line cut by a kill: tolerated
    assert logs.read_metrics(run)
    metrics.write_bytes(original.replace(b'"samples": ', b'"samples":  ', 1))
    with pytest.raises(AevbError, match="SHA-256"):
        logs.read_metrics(run)


def test_a_kill_between_the_writes_of_a_checkpoint_leaves_a_verified_run(digits_run,
                                                                         tmp_path, monkeypatch):
    run = _copy(digits_run, tmp_path)
    real, written = files.atomic_write, []

    def dies_after_the_first_file(path, data):
        if written and path.name != "manifest.json":
            raise KeyboardInterrupt  # the process dies here
        real(path, data)
        if path.name != "manifest.json":
            written.append(path.name)

    monkeypatch.setattr(files, "atomic_write", dies_after_the_first_file)
    model = aevb.load(run)
    with pytest.raises(KeyboardInterrupt):
        integrity.write(run, {"state.safetensors": b"new state", "model.safetensors": b"x"})
    monkeypatch.undo()
    assert written == ["state.safetensors"]
    integrity.verify(run, integrity.recorded_names(run))  # both versions accepted for now
    aevb.load(run)
    assert model is not None


def test_old_runs_load_with_a_note(digits_run, tmp_path):
    run = _copy(digits_run, tmp_path)
    (run / "manifest.json").unlink()
    r = _cli("sample", str(run), "-n", "4", "--out", str(tmp_path / "s.png"))
    assert r.returncode == 0, r.stderr
    notes = r.stderr.strip().splitlines()
    assert len(notes) == 1 and "carries no checksums" in notes[0], r.stderr


def test_a_non_finite_evaluation_is_an_error(digits_run, tmp_path):
    run = _copy(digits_run, tmp_path)
    model = aevb.load(run)
    with torch.no_grad():
        model.decoder.net[-1].bias[0] = float("inf")
        model.encoder.net[0].weight[0, 0] = float("nan")
    from safetensors.torch import save

    integrity.write(run, {"model.safetensors": save(
        {k: v.contiguous() for k, v in model.state_dict().items()}, metadata={"format": "pt"})})
    line = _one_error_line(_cli("evaluate", str(run), "--importance-samples", "3"))
    assert "non-finite" in line


# -------------------------------------------------------------- checkpoints with bad sizes

@pytest.fixture(scope="module")
def unfinished_run(tmp_path_factory):
    """A run whose config asks for more samples than it trained: it can be resumed."""
    out = tmp_path_factory.mktemp("unfinished") / "run"
    cfg = aevb.resolve(dataset="digits", latent_dim=3, hidden=(200,), samples=2000,
                       eval_points=2, out=str(out), download=False)
    aevb.train(cfg, progress=False)
    info = checkpoint.read_config(out)
    info["config"]["samples"] = info["total_samples"] = 10_000
    checkpoint.write_config(out, info)
    return out


def _crafted(run, tmp_path, change):
    target = _copy(run, tmp_path)
    path = target / "state.safetensors"
    raw = path.read_bytes()
    meta = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
    tensors = load_file(path)
    change(tensors, meta)
    save_file(tensors, path, metadata=meta)
    integrity.record(target, "state.safetensors")  # consistent with its manifest
    return target


def _mt_state(left, nxt):
    state = torch.Generator().manual_seed(0).get_state().clone()
    state[8:12] = torch.tensor([left], dtype=torch.int32).view(torch.uint8)
    state[16:24] = torch.tensor([nxt], dtype=torch.int64).view(torch.uint8)
    return state


CRAFTED = {
    "truncated sum": lambda t, m: t.update({"optimizer.0.sum": t["optimizer.0.sum"][:10]}),
    "empty step": lambda t, m: t.update({"optimizer.1.step": torch.zeros(0)}),
    "int64 sum": lambda t, m: t.update({"optimizer.2.sum": t["optimizer.2.sum"].long()}),
    "missing sum": lambda t, m: t.pop("optimizer.3.sum"),
    "short generator state": lambda t, m: t.update({"rng.noise": t["rng.noise"][:100]}),
    "generator left out of range": lambda t, m: t.update({"rng.noise": _mt_state(0, 5)}),
    "generator next out of range": lambda t, m: t.update({"rng.noise": _mt_state(3, 623)}),
    "order out of range": lambda t, m: t.update({"order": torch.arange(1617) + 10**6}),
    "progress out of range": lambda t, m: m.update(
        {"progress": json.dumps({**json.loads(m["progress"]), "position": 10**9})}),
}


@pytest.mark.parametrize("what", list(CRAFTED))
def test_resume_refuses_state_that_does_not_fit(unfinished_run, tmp_path, what):
    run = _crafted(unfinished_run, tmp_path, CRAFTED[what])
    before = _snapshot(run)
    line = _one_error_line(_cli("train", "--resume", str(run), "--quiet"))
    assert "state.safetensors" in line, line
    assert _snapshot(run) == before


def test_resume_still_works_on_the_untouched_state(unfinished_run, tmp_path):
    run = _crafted(unfinished_run, tmp_path, lambda t, m: None)
    r = _cli("train", "--resume", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    assert logs.read_metrics(run)[-1]["samples"] == 10_000


# ----------------------------------------------------------- the compiled path's memory

def _model(hidden=(20,), latent=4, seed=0):
    model = VAE(ModelConfig((28, 28), latent, hidden, "bernoulli"))
    initialize(model, 0.05, torch.Generator().manual_seed(seed))
    return model


def test_native_entry_points_check_sizes(lib):
    p = torch.zeros(100)
    with pytest.raises(ValueError, match="size"):
        calls.adagrad(lib, p, torch.zeros(100), torch.zeros(10), torch.zeros(1), 0.1, 0, 1e-10)
    with pytest.raises(ValueError, match="size"):
        calls.adagrad(lib, p, torch.zeros(100), torch.zeros(100), torch.zeros(0), 0.1, 0, 1e-10)
    gen = torch.Generator()
    for left, nxt in ((0, 0), (625, 0), (3, 623), (624, 5), (2, 624), (-5, 0)):
        # torch's set_state refuses some of these itself, but not the last three in range
        if (left, nxt) in ((3, 623), (624, 5), (2, 624)):
            gen.set_state(_mt_state(left, nxt))
            before = gen.get_state()
            with pytest.raises(ValueError, match="counters"):
                calls.bernoulli(lib, torch.full((50,), 0.5), gen)
            assert torch.equal(gen.get_state(), before)
        # the C code refuses it too, whoever calls it
        state, out = _mt_state(left, nxt), torch.empty(50)
        assert lib.aevb_mt19937_bernoulli(state.data_ptr(), torch.full((50,), 0.5).data_ptr(),
                                          None, 1, out.data_ptr(), 1, 50) == 2


def test_the_optimizer_refuses_a_wrong_sized_state(lib):
    model = _model()
    opt = native.Adagrad(model.parameters(), lr=0.1, weight_decay=0.0)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.state[next(model.parameters())]["sum"] = torch.zeros(3)
    with pytest.raises(ValueError, match="size"):
        opt.step()


def test_one_native_step_called_from_two_threads(lib):
    model = _model()
    step = native.Step(model, None)
    gen = torch.Generator().manual_seed(1)
    batches = [((torch.rand(50, 784, generator=gen) < 0.3).float(),
                torch.randn(1, 50, 4, generator=gen)) for _ in range(2)]
    expected = [step(x, eps).clone() for x, eps in batches]
    got = [[], []]

    def work(i):
        for _ in range(300):
            got[i].append(step(*batches[i]).clone())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert all(torch.equal(g, expected[i]) for g in got[i])


def test_a_zero_width_layer_takes_the_pytorch_path(lib):
    model = _model(hidden=(8,))
    model.encoder.net[0] = torch.nn.Linear(784, 0)
    model.encoder.net[2] = torch.nn.Linear(0, 8)
    assert not native.supports(model)  # so the engine never gives it the native step
    cfg = aevb.resolve("mnist-paper", latent_dim=4, hidden=(8,), engine="native")
    choice = aevb.training.build.choose_engine(cfg, model, torch.device("cpu"), 10**6)
    assert choice.name != "native" and "MLP" in choice.reason
    layer = calls.LayerTensors(torch.zeros(0, 784), torch.zeros(0), None, None, None, None,
                                 torch.zeros(10, 0), None)
    with pytest.raises(ValueError, match="zero"):
        calls.plan_step([layer, layer], 1, {}, torch.Size([10, 784]), torch.Size([1, 10, 0]))


def test_a_refused_step_leaves_every_grad_as_it_was(lib):
    model = _model()
    optimizer = aevb.training.build.make_optimizer(aevb.resolve("mnist-paper"), model, 1000, True)
    step = native.Step(model, optimizer)
    x, eps = (torch.rand(10, 784) < 0.3).float(), torch.randn(1, 10, 4)
    step(x, eps)
    with torch.no_grad():
        model.decoder.net[-1].weight[5, 0] = float("inf")
    grads = [p.grad.clone() for p in model.parameters()]
    assert step(x, eps) is None
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)


# ------------------------------------------------------------------ the kernels' cache

@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AEVB_KERNELS", raising=False)  # also when the suite runs without them
    monkeypatch.setattr(kernels, "_LOADED", {})
    return tmp_path / "cache" / "aevb" / "kernels"


def test_a_library_others_may_write_is_refused_and_a_broken_one_rebuilt(lib, fresh_cache,
                                                                        monkeypatch):
    assert kernels.load() is not None
    (built,) = fresh_cache.glob("kernels-*.so")
    assert fresh_cache.stat().st_mode & 0o777 == 0o700
    built.chmod(0o666)
    monkeypatch.setattr(kernels, "_LOADED", {})
    assert kernels.load() is None and "written by other users" in kernels.unavailable_reason()
    built.unlink()  # a new file: the loaded one is mapped into this process
    built.write_bytes(b"not a library")
    # A fresh process: this one would be handed the library it loaded under that name.
    r = subprocess.run([sys.executable, "-c", "from aevb.native import library as k; "
                        "print(k.load() is not None, k.unavailable_reason())"],
                       capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert r.stdout.split()[0] == "True", r.stdout + r.stderr  # rebuilt
    assert built.read_bytes()[:4] == b"\x7fELF"


def test_a_cache_folder_of_another_user_is_refused(lib, fresh_cache, monkeypatch):
    if os.getuid() != 0:
        pytest.skip("only root can give a folder to another user here")
    fresh_cache.mkdir(parents=True)
    os.chown(fresh_cache, 4242, 4242)
    assert kernels.load() is None and "another user" in kernels.unavailable_reason()


def test_a_failed_build_is_remembered_and_named(fresh_cache, monkeypatch, tmp_path):
    log = tmp_path / "calls"
    fake = tmp_path / "fakecc"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n'
                    'if [ "$1" = "--version" ]; then echo "fakecc 1.0"; exit 0; fi\n'
                    'echo "fatal error: omp.h: No such file or directory" >&2\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    for _ in range(3):
        assert kernels.load() is None
    assert "omp.h: No such file" in kernels.unavailable_reason()
    builds = [line for line in log.read_text().splitlines() if "--version" not in line]
    assert len(builds) == 1


def test_the_cache_key_includes_compiler_and_flags(monkeypatch):
    a = kernels.library_name("gcc 12")
    assert kernels.library_name("gcc 13") != a
    monkeypatch.setattr(kernels, "_flags", lambda: ["-O2"])
    assert kernels.library_name("gcc 12") != a


# ------------------------------------------------------------ the file system fails us

def test_a_full_disk_during_a_checkpoint_gives_one_line(tmp_path, monkeypatch, capsys):
    from aevb import cli

    real_fsync, calls = os.fsync, []

    def fsync(fd):
        if (out / "model.safetensors").exists():  # after the first checkpoint
            calls.append(fd)
        if len(calls) > 8:  # the disk is full
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    out = tmp_path / "run"
    monkeypatch.setattr(files.os, "fsync", fsync)
    status = cli.main(["train", "--dataset", "digits", "--latent-dim", "2", "--hidden", "16",
                       "--epochs", "20", "--eval-points", "10", "--quiet", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("aevb: warning:")]  # (kernels unavailable, when so)
    assert status == 2 and len(err) == 1 and "No space left" in err[0], err
    monkeypatch.undo()
    assert not list(out.glob(".*.tmp-*"))  # no temporary file left behind
    aevb.load(out)  # the previous checkpoint is intact and verified
    integrity.verify(out, integrity.recorded_names(out))


def test_renames_are_made_durable(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(files, "fsync_dir", lambda folder: synced.append(folder))
    files.atomic_write(tmp_path / "a.json", b"{}")
    assert synced == [tmp_path]


def test_temporaries_of_a_killed_process_are_cleaned_up(digits_run, tmp_path):
    run = _copy(digits_run, tmp_path)
    stale = run / ".state.safetensors.tmp-abc123"
    stale.write_bytes(b"half a checkpoint")
    with folder.exclusive(run):
        assert not stale.exists()


def test_the_run_directory_is_checked_under_the_lock(tmp_path, monkeypatch):
    """Another process that makes a run between the check and the lock is not overwritten."""
    out = tmp_path / "run"
    real = folder.exclusive

    def another_process_finishes_first(run_dir, active=True, wait=False):
        (out / "config.json").write_text('{"theirs": true}')
        return real(run_dir, active, wait)

    monkeypatch.setattr(folder, "exclusive", another_process_finishes_first)
    cfg = aevb.resolve(dataset="digits", latent_dim=2, hidden=(8,), samples=200,
                       eval_points=1, out=str(out), download=False)
    with pytest.raises(AevbError, match="already holds a run"):
        aevb.train(cfg, progress=False)
    assert json.loads((out / "config.json").read_text()) == {"theirs": True}


def test_training_starts_without_fcntl(tmp_path, monkeypatch):
    """A platform without fcntl (Windows) still trains: the lock falls back."""
    import builtins

    real_import = builtins.__import__

    def no_fcntl(name, *args, **kw):
        if name == "fcntl":
            raise ImportError("no fcntl here")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_fcntl)
    cfg = aevb.resolve(dataset="digits", latent_dim=2, hidden=(8,), samples=300,
                       eval_points=1, out=str(tmp_path / "run"), download=False)
    run = aevb.train(cfg, progress=False)
    assert logs.read_metrics(run)[-1]["samples"] == 300


def test_warnings_are_one_line(tmp_path):
    r = _cli("train", "--dataset", "digits", "--samples", "200", "--eval-points", "1",
             "--hidden", "8", "--latent-dim", "2", "--quiet", "--out", str(tmp_path / "r"),
             env={**os.environ, "AEVB_KERNELS": "0"})
    assert r.returncode == 0, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("aevb: warning: aevb.native unavailable (AEVB_KERNELS=0)")



# ------------------------------------------------------------------------ cost and memory

def test_appendix_d_evaluations_report_progress():
    from aevb.evaluation.evaluate import hmc_harmonic_log_likelihood
    from aevb.training.loop import _appendix_d

    model = VAE(ModelConfig((6,), 2, (8,), "bernoulli"))
    initialize(model, 0.3, torch.Generator().manual_seed(0))
    x = (torch.rand(25, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    seen = []
    value = _appendix_d(model, x, 7, True, lambda done, n: seen.append((done, n)), chunk=10)
    assert seen == [(0, 25), (10, 25), (20, 25), (25, 25)]
    parts = [hmc_harmonic_log_likelihood(model, x[i:i + 10], seed=7 + i) for i in (0, 10, 20)]
    assert value == pytest.approx(float(torch.cat(parts).double().mean()), abs=1e-9)


@pytest.mark.slow
def test_evaluation_peak_memory_is_the_same_in_every_process(data_dir, tmp_path):
    """K = 5000 over 300 MNIST test images peaked anywhere from 0.66 to 1.9 GB from one process
    to the next (glibc's moving mmap threshold); with it fixed, every process stays low."""
    run = tmp_path / "run"
    aevb.train(aevb.resolve("mnist-paper", samples=1000, eval_points=1, out=str(run),
                            data_dir=str(data_dir), download=False), progress=False)
    code = ("import sys\nfrom aevb.cli import main\n"
            "main(['evaluate', sys.argv[1], '--importance-samples', '5000', '--limit', '300'])\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))")
    peaks = [int(subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True,
                                text=True, check=True).stdout.split()[-1]) / 2**20
             for _ in range(6)]
    assert max(peaks) < 1.0, peaks


def _shape():
    """scripts/shape.py, the one definition of the import graph and the layers."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "shape.py"
    spec = importlib.util.spec_from_file_location("aevb_shape", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_circle_among_the_modules():
    """No aevb module imports, at its top or inside a function, one that imports it back,
    directly or through others (evaluate once imported trainer, for pick_device, while
    trainer imported it)."""
    shape = _shape()
    deps = shape.import_graph()
    assert len(deps) > 25 and "aevb.rundir.evaluations" in deps["aevb.cli.evaluate"] \
        and "aevb.evaluation.evaluate" in deps["aevb.training.loop"]  # (was trainer)
    assert shape.circles({**deps, "aevb.errors": {"aevb.training.loop"}}) != []  # it can fail
    assert shape.circles(deps) == []


def test_no_import_from_a_lower_layer_to_a_higher_one():
    """The layers of docs/architecture.md hold: the maths never imports the native backend,
    the run directory never the training loop, and so on (every module is in a layer)."""
    shape = _shape()
    deps = shape.import_graph()
    assert shape.layer("aevb.maths.distributions") < shape.layer("aevb.native.step")
    assert shape.layer_breaches({"aevb.maths.distributions": {"aevb.native"}}) != []
    assert shape.layer_breaches(deps) == []
