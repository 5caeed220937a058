"""Helpers the command-line tests share: run `aevb` in a subprocess, check its one-line error."""
import subprocess
import sys


def cli(*args, timeout=600, **kw):
    """`aevb ARGS...` in a fresh process; the CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "aevb", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def start(*args, **kw):
    """`aevb ARGS...` started in a fresh process, stdout and stderr piped as text."""
    return subprocess.Popen([sys.executable, "-m", "aevb", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def one_error_line(r, status=2):
    """The single `aevb: error:` line of a refused command (and exit `status`)."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == status, r.stderr
    assert len(lines) == 1 and lines[0].startswith("aevb: error:"), r.stderr
    return lines[0]


def no_traceback(r):
    """A command that ended without a Python traceback: exit 0, or 2 with one error line."""
    assert "Traceback" not in r.stderr, r.stderr
    if r.returncode != 0:
        one_error_line(r)
    return r


def snapshot(folder):
    """Every file below `folder` (bytes), to check that a command changed none."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and not p.name.endswith(".lock")}


def killed_run_resumes_bitwise(settings, reference, out, records=3,
                               keys=("samples", "train_elbo", "test_elbo")):
    """`aevb train SETTINGS --out OUT` stopped by SIGTERM after `records` metrics records, then
    `--resume`d, ends with the metrics (`keys`) and model.safetensors of the finished run in
    `reference`."""
    import signal
    import time

    from aevb.rundir.logs import read_metrics

    proc = start("train", *settings, "--out", str(out))
    deadline = time.time() + 120
    while len(read_metrics(out)) < records and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, proc.stderr.read()
    resumed = start("train", "--resume", str(out), "--quiet")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert [[m[k] for k in keys] for m in read_metrics(out)] == \
        [[m[k] for k in keys] for m in read_metrics(reference)]
    assert (out / "model.safetensors").read_bytes() == \
        (reference / "model.safetensors").read_bytes()


def trained_and_evaluated(settings, run, importance_samples=500):
    """`aevb train SETTINGS --out RUN`, checked to have learned (the test bound up by more than
    5 nats) and to give an importance-sampled log p(x) between its last bound and 0 nats;
    returns (the loaded model, the Evaluation)."""
    import aevb
    from aevb.rundir.evaluations import evaluate_run
    from aevb.rundir.logs import read_metrics

    first = start("train", *settings, "--out", str(run))
    assert first.wait(timeout=300) == 0, first.stderr.read()
    metrics = read_metrics(run)
    assert metrics[-1]["test_elbo"] > metrics[0]["test_elbo"] + 5
    result = evaluate_run(run, importance_samples=importance_samples)
    assert metrics[-1]["test_elbo"] < result.log_likelihood < 0
    return aevb.load(run), result


def refused_by_export_and_explorer(run, tmp_path):
    """The one-line errors of `aevb export` and `aevb explore` on RUN, after checking that
    `aevb sample` still serves it."""
    assert cli("sample", run, "-n", "4", "--out", tmp_path / "s.png").returncode == 0
    return (one_error_line(cli("export", run, "--format", "onnx", "--out", tmp_path / "onnx")),
            one_error_line(cli("explore", run)))
