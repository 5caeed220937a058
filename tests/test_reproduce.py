"""`aevb reproduce`: every configuration of a figure, resumable, with figures and results.md."""
import re
import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import cli
from PIL import Image

from aevb.rundir.logs import read_metrics
from aevb.training.reproduce import FIG2_LATENT, plan


def _aevb(*args):
    return cli(*args, timeout=900)


def test_plan_has_the_papers_configurations_and_figures_share_runs():
    fig2 = plan("fig2")
    assert len(fig2) == 2 * (5 + 4) and len({s.name for s in fig2}) == len(fig2)
    mnist = [s.config for s in fig2 if s.config.dataset == "mnist"]
    assert {c.latent_dim for c in mnist} == set(FIG2_LATENT["mnist"])
    assert {c.hidden for c in mnist} == {(500,)}
    frey = [s.config for s in fig2 if s.config.dataset == "frey-face"]
    assert {c.hidden for c in frey} == {(200,)} and {c.likelihood for c in frey} == {"gaussian"}
    assert all(c.optimizer == "adagrad" and c.batch_size == 100 and c.mc_samples == 1
               and c.samples == 10**6 for c in mnist + frey)
    fig3 = plan("fig3", budget=5000)
    assert {(s.config.train_examples, s.algorithm) for s in fig3} == \
        {(n, a) for n in (1000, 50000) for a in ("aevb", "wake-sleep", "mcem")}
    assert all(s.config.latent_dim == 3 and s.config.hidden == (100,) for s in fig3)
    # The appendix D evaluations follow the budget: the paper's 1000 points at the default.
    assert {(s.config.eval_points, s.config.eval_likelihood) for s in plan("fig3")} == {(6, 1000)}
    assert {(s.config.eval_points, s.config.eval_likelihood) for s in fig3} == {(3, 20)}
    assert {s.config.eval_likelihood for s in plan("fig3", budget=20_000)} == {20}
    assert {s.config.eval_likelihood for s in plan("fig3", budget=10**5)} == {100}
    assert {s.config.eval_likelihood for s in plan("fig3", budget=5000,
                                                   likelihood_examples=7)} == {7}
    shared = {s.name: s.config for s in fig2 + plan("fig4")}
    for s in plan("fig5"):  # Figure 5 trains only what Figures 2 and 4 lack: nothing
        assert shared[s.name] == s.config


def _rows(results: str, section: str) -> list[list[str]]:
    body = results.split(f"## {section}")[1].split("## ")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in body.splitlines()
            if line.startswith("| ") and not line.startswith("| dataset")
            and not line.startswith("| training")]


def test_fig2_end_to_end_resumes_and_reuses_runs(data_dir, tmp_path):
    out = tmp_path / "repro"
    args = ["--dataset", "frey-face", "--out", str(out), "--data-dir", str(data_dir),
            "--no-download", "--quiet"]
    # Interrupt the first time: the run being trained keeps its checkpoint.
    proc = subprocess.Popen([sys.executable, "-m", "aevb", "reproduce", "fig2", "--budget",
                             "20000", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    first = out / "runs" / "frey-face-nz2-h200-aevb"
    deadline = time.time() + 300
    while len(read_metrics(first)) < 4 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    assert "run the same aevb reproduce command again" in proc.stderr.read()
    r = _aevb("reproduce", "fig2", "--budget", "20000", *args)
    assert r.returncode == 0, r.stderr
    assert "frey-face-nz2-h200-aevb: resumed" in r.stderr
    samples = [m["samples"] for m in read_metrics(first)]
    assert samples == sorted(set(samples)) and samples[-1] == 20000
    image = Image.open(out / "fig2-frey-face.png")
    assert image.size == (4 * 320, 360)  # one 3.2 x 3.6 inch panel per N_z, 100 dpi
    results = (out / "results.md").read_text()
    rows = _rows(results, "fig2")
    assert len(rows) == 8 and "20,000" in results
    for dataset, nz, algorithm, train, test, run in rows:  # the numbers are the runs' own
        last = read_metrics(out / run.strip("`"))[-1]
        assert (float(train), float(test)) == (round(last["train_elbo"], 2),
                                               round(last["test_elbo"], 2))
    # Again: nothing is trained twice. Figure 4 (Frey Face, N_z = 2) reuses Figure 2's run.
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.jsonl")}
    r = _aevb("reproduce", "fig2", "--budget", "20000", *args)
    assert r.returncode == 0 and r.stderr.count("finished earlier") == 8, r.stderr
    r = _aevb("reproduce", "fig4", "--budget", "20000", *args)
    assert r.returncode == 0 and "frey-face-nz2-h200-aevb: finished earlier" in r.stderr
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.jsonl")}
    # A 20 x 20 grid of 28 x 20 faces, 1-pixel gaps, every pixel drawn 2 x 2.
    assert Image.open(out / "fig4-frey-face.png").size == (2 * (20 * 21 + 1), 2 * (20 * 29 + 1))
    assert "## fig2" in (out / "results.md").read_text()
    assert "## fig4" in (out / "results.md").read_text()
    # Another budget into the same directory would overwrite trained runs: refused.
    r = _aevb("reproduce", "fig2", "--budget", "30000", *args)
    assert r.returncode == 2 and "other settings" in r.stderr and "samples" in r.stderr
    assert "Traceback" not in r.stderr


def test_fig3_end_to_end_with_mcem(data_dir, tmp_path):
    out = tmp_path / "repro"
    r = _aevb("reproduce", "fig3", "--budget", "300", "--likelihood-examples", "10",
              "--out", str(out), "--data-dir", str(data_dir), "--no-download", "--quiet")
    assert r.returncode == 0, r.stderr
    # The cost is said before anything starts.
    assert r.stderr.splitlines()[0] == ("fig3: 6 runs of 300 training samples each; 3 "
                                        "evaluations per run, each with the appendix D "
                                        "estimate (HMC) on 10 train and 10 test points (360 "
                                        "point-estimates in all, the costly part; fewer with "
                                        "--likelihood-examples); finished runs are reused")
    assert Image.open(out / "fig3.png").size == (2 * 320, 360)
    rows = _rows((out / "results.md").read_text(), "fig3")
    assert [(n, a) for n, a, *_ in rows] == [(n, a) for n in ("1000", "50000")
                                             for a in ("AEVB", "Wake-Sleep", "MCEM")]
    for *_, train, test, run in rows:
        last = read_metrics(out / run.strip("`"))[-1]
        assert float(test) == round(last["test_log_likelihood"], 2)
        assert -545 < float(train) < -100  # 300 samples: from 784 log 2 = 543.4 upwards


@pytest.mark.parametrize("args, needle", [
    (["fig9"], "invalid choice"),
    (["fig3", "--dataset", "frey-face"], "fig3 is drawn for mnist"),
    (["fig2", "--budget", "0"], "budget must be at least 1"),
    (["fig3", "--likelihood-examples", "0"], "likelihood-examples"),
])
def test_bad_reproduce_options(args, needle, tmp_path):
    r = _aevb("reproduce", *args, "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
    assert not re.search(r"\n.", r.stderr.strip())  # one line
