"""aevb's M2 beside Pyro's semi-supervised VAE (its ss-vae example's model and settings), on the
same 100 labelled MNIST points, networks (784-500 softplus, z of 50) and epochs: training
samples per second and the test error after the same number of epochs, in one run.

    bash bench/setup_pyro.sh          # pyro-ppl 1.9.1 in bench/.venv-pyro, once
    AEVB_DATA=../shared/data .venv/bin/python bench/ssvae.py [EPOCHS]   # ~10 min for 3 epochs

aevb runs `aevb train --preset m2-paper` (dynamically binarized pixels, Adam 3e-4, M = 100,
alpha = 0.1 N, a labelled minibatch beside each one); Pyro runs bench/peer_pyro_ssvae.py
(grey-level pixels as its example reads them, its Adam step of 4.2e-4, its auxiliary weight
46, one labelled minibatch every N/100 minibatches). Both on this machine's cores, one after
the other. Writes bench/ssvae.json.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LABELS, BATCH, HIDDEN, Z = 100, 100, 500, 50


def main(epochs):
    import aevb
    from aevb.data import MNIST_FILES, load_dataset, locate
    from aevb.data.labels import balanced_subset
    from aevb.rundir.logs import read_metrics

    data = load_dataset("mnist", download=False)
    mnist_dir = Path(locate(MNIST_FILES["train-images-idx3-ubyte.gz"], None, False)).parent
    with tempfile.TemporaryDirectory() as tmp:
        # the labelled points: those aevb's run draws (seed 0), given to Pyro as indices
        labelled = balanced_subset(data.train_labels, LABELS, 10, 0).numpy()
        np.save(f"{tmp}/labelled.npy", labelled)
        run = Path(tmp) / "aevb"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aevb", "train", "--preset", "m2-paper",
                        "--epochs", str(epochs), "--eval-points", "2", "--quiet",
                        "--out", str(run)], check=True)
        ours = read_metrics(run)[-1]
        ours = {"samples_per_second": ours["samples_per_second"], "test_error":
                ours["test_error"], "wall_seconds": time.perf_counter() - start,
                "aevb": aevb.__version__}
        peer = subprocess.run(
            [str(HERE / ".venv-pyro" / "bin" / "python"), str(HERE / "peer_pyro_ssvae.py"),
             str(mnist_dir), f"{tmp}/labelled.npy", str(epochs), str(BATCH), "4.2e-4", "46",
             str(HIDDEN), str(Z)], check=True, capture_output=True, text=True)
        pyro = json.loads(peer.stdout.strip().splitlines()[-1])
    result = {"machine": {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")},
              "epochs": epochs, "labels": LABELS, "aevb": ours, "pyro": pyro,
              "speed_ratio": round(ours["samples_per_second"] / pyro["samples_per_second"], 2)}
    (HERE / "ssvae.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
