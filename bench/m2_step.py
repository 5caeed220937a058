"""M2's training step with the sum over classes read two ways: `labelled.EveryClass` (the
encoder's first layer computes W_x x once per point and adds the label's column) against the
one-hot rows concatenated to every repeat of x (`labelled.Given`), on the m2-paper networks
(784-500-50 softplus, 10 classes, M = 100, a labelled minibatch of 100 beside each step), on
this machine's threads, interleaved rounds, one process.

    .venv/bin/python bench/m2_step.py [STEPS]     # about a minute; prints JSON

The densities are the same (tests/test_labels.py checks them and their gradients to 1e-12).
"""
import json
import statistics
import sys
import time

import torch


def main(steps=150, rounds=5):
    import aevb
    from aevb.algorithms.sgvb import LabelledStep
    from aevb.data.labels import Observed
    from aevb.labelled import EveryClass, Given
    from aevb.maths.objectives import ESTIMATORS

    g = torch.Generator().manual_seed(0)
    n, d, c = 6000, 784, 10
    x = torch.bernoulli(torch.full((n, d), 0.13), generator=g)
    y = torch.full((n,), -1)
    y[:100] = torch.arange(100) % c
    config = aevb.ModelConfig((d,), latent_dim=50, hidden=(500,), activation="softplus",
                              classes=c, classifier_hidden=(500,))
    model = aevb.VAE(config)
    aevb.model.initialize(model, 0.03, torch.Generator().manual_seed(1))
    step = LabelledStep(model, torch.optim.Adam(model.parameters(), lr=3e-4), ESTIMATORS["B"],
                        1, Observed.of(y, c, x), 0.1, binarize=False, batch_size=100)
    fast_encode = EveryClass.encode

    def per_step(split: bool) -> float:
        EveryClass.encode = fast_encode if split else Given.encode
        noise = torch.Generator().manual_seed(2)
        step(x[:100], torch.arange(100), noise)  # warm
        t0 = time.perf_counter()
        for i in range(steps):
            idx = torch.arange(100) + 100 * (i % 50)
            step(x[idx], idx, noise)
        return (time.perf_counter() - t0) / steps

    times = {"every_class_ms": [], "concatenated_ms": []}
    for r in range(rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        for split in order:
            times["every_class_ms" if split else "concatenated_ms"].append(
                1000 * per_step(split))
    EveryClass.encode = fast_encode
    out = {k: round(statistics.median(v), 2) for k, v in times.items()}
    out["speedup"] = round(out["concatenated_ms"] / out["every_class_ms"], 2)
    out["threads"], out["steps_per_round"], out["rounds"] = torch.get_num_threads(), steps, rounds
    print(json.dumps(out))


if __name__ == "__main__":
    main(*map(int, sys.argv[1:2]))
