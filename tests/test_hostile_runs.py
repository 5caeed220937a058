"""A hostile user against run directories: concurrent reproductions, stops at any moment,
folders that are not runs, outputs aimed at a run's files, crafted config.json, appended logs.

Each test names the class of docs/reliability.md ("Hostile use") it checks; the case lists
are the counts that page gives.
"""
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import cli, no_traceback, one_error_line, snapshot

import aevb
from aevb.config import saved_config
from aevb.errors import AevbError
from aevb.rundir import checkpoint, integrity, logs
from aevb.training import reproduce

TINY = ["--dataset", "digits", "--latent-dim", "3", "--hidden", "32", "--quiet"]


def _copy(run, tmp_path, name="run"):
    target = tmp_path / name
    shutil.copytree(run, target)
    return target


def _hold_lock(run_dir):
    """Another process holding the run's lock (as a training process does) until killed."""
    code = ("import fcntl, sys, time; f = open(sys.argv[1], 'a+b'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir / ".lock")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _unstarted(digits_run, tmp_path):
    """A run directory as a process leaves it when killed before its first checkpoint."""
    run = tmp_path / "unstarted"
    run.mkdir()
    shutil.copy(digits_run / "config.json", run / "config.json")
    info = json.loads((run / "config.json").read_text())
    info["config"]["out"] = str(run)
    (run / "config.json").write_text(json.dumps(info))
    return run, info


# ------------------------------------------------------------------------------ data loss

def test_a_second_reproduce_never_deletes_a_run_another_process_trains(digits_run, tmp_path):
    """Class "concurrent reproduce": 3 cases (a run stopped before its checkpoint whose lock
    is held; a run in its first evaluation in another process; the same run free)."""
    run, info = _unstarted(digits_run, tmp_path)
    spec = reproduce.Spec(run.name, saved_config(info), "panel", "AEVB")
    holder = _hold_lock(run)
    try:
        before = snapshot(run)
        with pytest.raises(AevbError, match="being trained by another process"):
            reproduce.ensure_trained(spec, run, progress=False)
        assert snapshot(run) == before  # nothing unlinked without the lock
    finally:
        holder.kill()
        holder.wait()
    # Process A in its first evaluation (appendix D on 150 points makes it last seconds).
    out = tmp_path / "a"
    a = subprocess.Popen([sys.executable, "-m", "aevb", "train", *TINY, "--samples", "2000",
                          "--eval-points", "2", "--eval-likelihood", "150", "--out", str(out)],
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "state.safetensors").exists() and time.time() < deadline:
        time.sleep(0.02)
    second = saved_config(checkpoint.read_config(out))
    with pytest.raises(AevbError, match="being trained by another process"):
        reproduce.ensure_trained(reproduce.Spec("a", second, "p", "AEVB"), out, progress=False)
    assert a.wait(timeout=600) == 0, a.stderr.read()
    samples = [m["samples"] for m in logs.read_metrics(out)]
    assert samples[0] == 0 and samples[-1] == 2000  # A finished, its files intact
    # With nobody holding it, the stopped run is simply trained from the start.
    assert reproduce.ensure_trained(spec, run, progress=False) == "trained"
    assert logs.read_metrics(run)[-1]["samples"] == info["total_samples"]


@pytest.mark.parametrize("command", [["manifold", "-n", "3"], ["reconstruct", "-n", "2"],
                                     ["latent"]], ids=lambda c: c[0])
def test_no_figure_command_writes_over_a_run_file(digits_run, tmp_path, command):
    """Class "outputs": a run's weights as --out of each figure command (3 cases)."""
    run = _copy(digits_run, tmp_path)
    kept = snapshot(run)
    assert "file of the run" in one_error_line(cli(command[0], run, "--out",
                                                   run / "model.safetensors", *command[1:]))
    assert snapshot(run) == kept


def test_an_output_option_never_replaces_a_file(digits_run, tmp_path):
    """Class "outputs": 7 cases of `aevb sample --out` (a run's weights, its metrics and its
    manifest with --force, a user's file, the same with --force, a dangling symlink, a new
    file)."""
    run = _copy(digits_run, tmp_path)
    kept = snapshot(run)
    for target, force in ((run / "model.safetensors", False), (run / "metrics.jsonl", True),
                          (run / "manifest.json", True)):
        line = one_error_line(cli("sample", run, "--out", target,
                                  *(["--force"] if force else [])))
        assert "file of the run" in line
    assert snapshot(run) == kept  # weights, logs and manifest untouched
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"my own picture")
    assert "--force" in one_error_line(cli("sample", run, "--out", mine))
    assert mine.read_bytes() == b"my own picture"
    r = cli("sample", run, "--out", mine, "--force")
    assert r.returncode == 0, r.stderr
    assert mine.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dangling = tmp_path / "link.png"
    dangling.symlink_to(tmp_path / "elsewhere.png")
    one_error_line(cli("sample", run, "--out", dangling))
    assert not (tmp_path / "elsewhere.png").exists()
    new = tmp_path / "sub" / "new.png"
    assert cli("sample", run, "--out", new).returncode == 0
    assert new.read_bytes()[:4] == b"\x89PNG" and snapshot(run) == kept


def test_plot_output_is_never_replaced(digits_run, tmp_path):
    """Class "outputs": `aevb plot` (2 cases: an existing file, the same with --force)."""
    mine = tmp_path / "curves.png"
    mine.write_bytes(b"mine")
    one_error_line(cli("plot", digits_run, "--out", mine))
    assert mine.read_bytes() == b"mine"
    assert cli("plot", digits_run, "--out", mine, "--force").returncode == 0


@pytest.mark.parametrize("files", [{"manifest.json": b'{"mine": 1}'}, {"samples.png": b"x"},
                                   {"notes.txt": b"x", "config.json": b"{}"},
                                   {"config.json": b'{"theirs": true}'}],
                         ids=["manifest", "picture", "notes", "config"])
def test_train_refuses_a_folder_that_is_not_a_run(tmp_path, files):
    """Class "outputs": 4 cases of foreign files in `train --out`."""
    out = tmp_path / "mine"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    line = one_error_line(cli("train", *TINY, "--samples", "100", "--out", out))
    assert "not an aevb run" in line or "another" in line or "something else" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files


# --------------------------------------------------------------- stops before the checkpoint

def _stop_early(tmp_path, sig, after):
    """Train into a new folder and send `sig` once `after` exists in it; the process."""
    out = tmp_path / f"run-{sig}-{after}"
    proc = subprocess.Popen([sys.executable, "-m", "aevb", "train", *TINY, "--samples", "1000",
                             "--eval-points", "2", "--eval-likelihood", "40", "--out", str(out)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / after).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(sig)
    return out, proc


SLOW = pytest.mark.slow


@pytest.mark.parametrize("sig,after", [pytest.param(signal.SIGINT, "state.safetensors",
                                                    marks=SLOW),
                                       pytest.param(signal.SIGKILL, "state.safetensors",
                                                    marks=SLOW),
                                       (signal.SIGKILL, "config.json"),
                                       pytest.param(signal.SIGTERM, "config.json", marks=SLOW)])
def test_a_run_stopped_before_its_first_evaluation_resumes(tmp_path, sig, after):
    """Class "stops before the first checkpoint": 4 cases (SIGINT and SIGKILL in the first
    evaluation; SIGKILL and SIGTERM as config.json appears); SIGTERM in the first evaluation
    is the next test's."""
    out, proc = _stop_early(tmp_path, sig, after)
    code = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert "Traceback" not in err
    if sig != signal.SIGKILL:
        assert code == 128 + sig
        lines = [x for x in err.splitlines() if x.startswith("aevb: interrupted:")]
        assert len(lines) == 1 and ("--resume" in lines[0] or "starts" in lines[0]), err
    r = cli("train", "--resume", out, "--quiet")
    assert r.returncode == 0, r.stderr
    samples = [m["samples"] for m in logs.read_metrics(out)]
    assert samples[0] == 0 and samples[-1] == 1000 and samples == sorted(set(samples))


def test_a_stopped_unstarted_run_is_restarted_by_the_same_command(digits_run, tmp_path):
    """Class "stops before the first checkpoint": the same `train --out` again (1 case)."""
    run, info = _unstarted(digits_run, tmp_path)
    r = cli("train", *TINY, "--samples", "300", "--eval-points", "1", "--out", run)
    assert r.returncode == 0, r.stderr
    assert logs.read_metrics(run)[-1]["samples"] == 300


@pytest.mark.parametrize("options", [["--samples", "1e30"], ["--samples", "1e19"],
                                     ["--epochs", "1e-9"], ["--epochs", "1e300"]])
def test_a_length_out_of_range_is_refused_before_anything_is_made(tmp_path, options):
    """Class "stops before the first checkpoint" and "options": 4 cases."""
    out = tmp_path / "run"
    one_error_line(cli("train", *TINY, *options, "--out", out))
    assert not out.exists()


def test_a_run_stopped_in_its_first_evaluation_ends_as_an_uninterrupted_one(tmp_path):
    """The step-0 checkpoint and the evaluation redone on resume change nothing: a run
    interrupted in its first evaluation ends as an uninterrupted one (1 case)."""
    ref = tmp_path / "ref"
    args = [*TINY, "--samples", "1000", "--eval-points", "2", "--eval-likelihood", "40"]
    assert cli("train", *args, "--out", ref).returncode == 0
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "aevb", "train", *args, "--out", str(out)],
                         stderr=subprocess.PIPE)
    while not (out / "state.safetensors").exists():
        time.sleep(0.005)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=120) in (0, 128 + signal.SIGTERM)
    if p.returncode:
        # The stop falls in the first evaluation, or while its step-0 checkpoint is being
        # recorded (the file is there, the record of it not yet): either line is true.
        line = p.stderr.read().decode()
        assert "checkpoint saved after 0 samples" in line or "nothing was trained" in line
        assert cli("train", "--resume", out, "--quiet").returncode == 0
    strip = [{k: m[k] for k in ("samples", "train_elbo", "test_elbo", "test_log_likelihood")}
             for m in logs.read_metrics(out)]
    assert strip == [{k: m[k] for k in ("samples", "train_elbo", "test_elbo",
                                        "test_log_likelihood")}
                     for m in logs.read_metrics(ref)]
    assert (out / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()


# ------------------------------------------------------------------- crafted config.json

HOSTILE_VALUES = [None, "abc", -8, 0, 1e12, 2**70, 1e30, [1e9], [-8, 8], [100000, 100000],
                  [2000000], {}, [], True, "x"]
MODEL_FIELDS = ["data_shape", "latent_dim", "hidden", "likelihood", "network", "activation",
                "theta_prior_std"]
CONFIG_FIELDS = ["seed", "hidden", "samples", "latent_dim", "batch_size", "mc_samples",
                 "dataset", "lr", "epochs", "algorithm"]


def _crafted_config(run, change):
    info = json.loads((run / "config.json").read_text())
    change(info)
    (run / "config.json").write_text(json.dumps(info))
    integrity.record(run, "config.json")  # the manifest agrees: only the schema can refuse


def _only_clean(action):
    try:
        action()
    except AevbError:
        pass


def test_crafted_configs_are_refused_in_one_line(digits_run, tmp_path):
    """Class "crafted config.json": every model and training field set to each hostile value
    (7 x 15 + 10 x 15 = 255 cases) plus 4 whole-file shapes, through `aevb.load` and the
    run's evaluation: AevbError or a working model, never another exception."""
    run = _copy(digits_run, tmp_path)
    original = (run / "config.json").read_text()
    cases = 0
    for section, names in (("model", MODEL_FIELDS), ("config", CONFIG_FIELDS)):
        for name in names:
            for value in HOSTILE_VALUES:
                (run / "config.json").write_text(original)

                def change(info, section=section, name=name, value=value):
                    info[section][name] = value
                _crafted_config(run, change)
                _only_clean(lambda: aevb.load(run))
                _only_clean(lambda: aevb.rundir.evaluations.test_set_of_run(run))
                cases += 1
    for whole in ('"a string"', "[1, 2]", "{}", '{"model": {}}'):
        (run / "config.json").write_text(whole)
        integrity.record(run, "config.json")
        with pytest.raises(AevbError):
            aevb.load(run)
        cases += 1
    assert cases == 259


@pytest.mark.parametrize("change", [("config", "hidden", 5), ("config", "hidden", None),
                                    ("config", "samples", 10**30), ("config", "seed", 2**70),
                                    ("config", None, "a string"), ("total_samples", None, 1e30)],
                         ids=["hidden5", "hiddennull", "samples", "seed", "string", "total"])
def test_crafted_configs_are_refused_on_resume(digits_run, tmp_path, change):
    """Class "crafted config.json": 6 resume cases, each one line and exit 2."""
    run = _copy(digits_run, tmp_path)
    section, name, value = change

    def craft(info):
        if name is None:
            info[section] = value
        else:
            info[section][name] = value
    _crafted_config(run, craft)
    one_error_line(cli("train", "--resume", run))


@pytest.mark.parametrize("hidden,message", [(2_000_000, "do not fit"), (10**9, "memory")])
def test_a_crafted_model_is_refused_before_allocation(digits_run, tmp_path, hidden, message):
    """Class "resource limits": `hidden [2000000]` (1 GB of weights that the file does not
    hold) and `hidden [1e9]` (more than the machine's memory) are refused before a tensor
    exists: the process stays small (2 cases)."""
    run = _copy(digits_run, tmp_path)
    _crafted_config(run, lambda info: info["model"].update(hidden=[hidden]))
    # The command's own peak, measured by a parent of its own (RUSAGE_CHILDREN).
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], "
            "capture_output=True, text=True); print(r.stderr, end='', file=sys.stderr); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    r = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "aevb", "sample",
                        str(run), "--out", str(tmp_path / "s.png")], capture_output=True,
                       text=True, timeout=300)
    assert message in one_error_line(r)
    assert int(r.stdout) < 900_000  # KB: no model of 1 GB or more was allocated


# ------------------------------------------------------------------------ logs past the record

def test_bytes_appended_to_a_log_are_never_shown_as_data(digits_run, tmp_path):
    """Class "logs past the recorded size": 4 cases (a fake record, `{}`, garbage, a cut
    line) in metrics.jsonl and evaluations.jsonl."""
    run = _copy(digits_run, tmp_path)
    real = logs.read_metrics(run)
    fake = {**real[-1], "samples": 987654321, "test_elbo": 12345.0}
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(fake) + "\n{}\nnot json\n")
    with pytest.warns(aevb.errors.AevbWarning, match="past the last recorded record"):
        assert logs.read_metrics(run) == real
    with open(run / "evaluations.jsonl", "a") as f:
        f.write('{"split": "test", "n": 1, "elbo": 1e9, "log_likelihood": 1e9, '
                '"importance_samples": 1}\n{"cut')
    r = no_traceback(cli("report", run))
    assert r.returncode == 0
    page = (run / "report.html").read_text()
    assert "987,654,321" not in page and "12345.00" not in page and "1000000000.00" not in page
    # An evaluation appended after the cut line is read whole (the cut line is ended first).
    assert cli("evaluate", run, "--importance-samples", "2", "--limit", "5").returncode == 0
    assert logs.read_evaluations(run)[-1]["n"] == 5


def test_an_appended_record_does_not_break_resume(tmp_path):
    """Class "logs past the recorded size": resume with `{}` appended (1 case)."""
    out = tmp_path / "run"
    cfg = aevb.resolve(dataset="digits", latent_dim=3, hidden=(32,), samples=2000,
                       eval_points=2, out=str(out), download=False)
    aevb.train(cfg, progress=False)
    info = checkpoint.read_config(out)
    info["config"]["samples"] = info["total_samples"] = 3000
    checkpoint.write_config(out, info)
    with open(out / "metrics.jsonl", "a") as f:
        f.write("{}\n")
    r = cli("train", "--resume", out, "--quiet")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert logs.read_metrics(out)[-1]["samples"] == 3000


# -------------------------------------------------------------------------- poor messages

def test_a_result_is_printed_even_when_it_cannot_be_logged(digits_run, tmp_path):
    """Class "messages": the log cannot be appended (here a folder in its place; a read-only
    disk takes the same path): the result, then one warning (1 case)."""
    run = _copy(digits_run, tmp_path)
    (run / "evaluations.jsonl").unlink(missing_ok=True)
    (run / "evaluations.jsonl").mkdir()
    r = cli("evaluate", run, "--importance-samples", "2", "--limit", "3", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n"] == 3
    assert r.stderr.strip().startswith("aevb: warning: the result is not logged")


def test_a_symlinked_log_is_never_written_through(digits_run, tmp_path):
    """Class "file-system safety": evaluations.jsonl a symlink to a file outside (1 case)."""
    run = _copy(digits_run, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    (run / "evaluations.jsonl").unlink(missing_ok=True)
    (run / "evaluations.jsonl").symlink_to(outside)
    r = cli("evaluate", run, "--importance-samples", "2", "--limit", "3")
    assert "symbolic link" in r.stderr and outside.read_text() == "mine\n"


def test_a_run_directory_that_is_a_file_is_one_line(tmp_path):
    """Class "messages": 3 commands on a file given as RUN_DIR or --out."""
    f = tmp_path / "run"
    f.write_text("x")
    for command in (["evaluate", f], ["train", "--resume", f]):
        assert "not a run directory" in one_error_line(cli(*command))
    assert "not a directory" in one_error_line(cli("train", *TINY, "--out", f))
