"""Two processes under torchrun (gloo on CPU): one run, rank 0's outputs, identical replicas."""
import json
import subprocess
import sys

from aevb.rundir import integrity
from aevb.rundir.logs import read_metrics


def test_two_process_gloo_run(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2",
                        "-m", "aevb", "train", "--dataset", "digits",
                        "--latent-dim", "2", "--hidden", "32", "--epochs", "3",
                        "--eval-points", "3", "--out", str(out), "--quiet", "--device", "cpu"],
                       capture_output=True, text=True, timeout=300)
    # Exit 0 includes the end-of-training check that every rank holds rank 0's parameters.
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("trained on") == 1  # only rank 0 reports
    info = json.loads((out / "config.json").read_text())
    assert info["world_size"] == 2
    metrics = read_metrics(out)
    samples = [m["samples"] for m in metrics]
    assert samples == sorted(set(samples))  # one writer: no record twice
    assert samples[-1] == 3 * info["data"]["n_train"]
    assert metrics[-1]["test_elbo"] > metrics[0]["test_elbo"] + 5
    # No stray temporary files (.lock is the run's training lock, .manifest.lock the
    # manifest's, both kept empty).
    assert not [p for p in out.iterdir()
                if p.name.startswith(".") and p.name not in (".lock", ".manifest.lock")]
    integrity.verify(out, integrity.recorded_names(out))
