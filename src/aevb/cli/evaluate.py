"""`aevb evaluate RUN_DIR`: the bound and the importance-sampled log-likelihood of a run, on
its own test split or on the user's data."""
from __future__ import annotations

import os
import sys
import warnings

from ..errors import AevbError
from . import flags


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="lower bound and importance-sampled log-likelihood")
    p.add_argument("run_dir")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--importance-samples", type=flags.number, default=5000, metavar="K")
    p.add_argument("--batch-size", type=flags.number, default=100, metavar="B")
    p.add_argument("--data", help="score a .npy/.npz file or an image folder instead of a split")
    p.add_argument("--per-example", metavar="FILE.npy", help="save one log p(x) per data point")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--method", choices=("importance", "hmc-harmonic"), default="importance",
                   help="importance sampling with q(z|x), or the paper's appendix D estimator "
                   "(HMC draws from the posterior; then --importance-samples is the number "
                   "of draws per data point, the paper's 50)")
    p.add_argument("--limit", type=flags.number, help="only the first LIMIT data points "
                   "(appendix D used the first 1000)")
    p.add_argument("--noise", metavar="EPS.npy", help="standard normal draws [K, N, J] to use "
                   "instead of the seeded ones (the noise an exported scorer was given)")


def run_evaluate(args) -> int:
    import io
    import json
    from pathlib import Path

    import numpy as np

    from .. import files
    from ..errors import AevbWarning
    from ..features import features_of
    from ..rundir.evaluations import evaluate_run
    from ..rundir.logs import append_jsonl
    from ..rundir.names import EVALUATIONS

    per_example = Path(args.per_example) if args.per_example else None
    if per_example is not None:
        if per_example.suffix != ".npy":
            raise AevbError(f"--per-example must name a .npy file, got {per_example}")
        if os.path.lexists(per_example):
            raise AevbError(f"{per_example} exists; choose another file (nothing is overwritten)")
    result = evaluate_run(args.run_dir, split=args.split,
                          importance_samples=args.importance_samples,
                          batch_size=args.batch_size, data=args.data, device=args.device,
                          method=args.method, limit=args.limit, noise=args.noise)
    summary = result.summary()
    if per_example is not None:
        buffer = io.BytesIO()
        np.save(buffer, result.per_example)
        files.write_new(per_example, buffer.getvalue())
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        _print_evaluation(result)
        if features_of(args.run_dir):
            print("(M1 + M2: the bound and log-likelihood are densities of M1's features z1 = "
                  "mu(x), not of the images)")
    if args.data is None:
        # After the result is shown: a run on a read-only disk still gives its numbers.
        try:
            append_jsonl(Path(args.run_dir) / EVALUATIONS, summary)
        except AevbError as err:
            warnings.warn(AevbWarning(f"the result is not logged: {err}"), stacklevel=1)
    return 0


def _print_evaluation(result) -> None:
    bound = "" if result.elbo is None else f"lower bound {result.elbo:.2f} nats, "
    what = "log-likelihood" if result.posterior_std is None else \
        "predictive log-likelihood log E_q(theta)[p(x|theta)]"
    if result.given_label:
        what = "conditional log-likelihood log p(x|y)"
    pairs = "" if result.posterior_std is None else " (theta, z) pairs"
    print(f"{result.split}: {result.n} data points, {bound}"
          f"{what} {result.log_likelihood:.2f} nats ({result.method}, "
          f"K = {result.importance_samples}{pairs}, {result.seconds:.1f} s)")
    if result.error is not None:
        print(f"classification error of q(y|x): {100 * result.error:.2f}% "
              f"({round(result.error * result.n)} of {result.n})")
    for layer in result.posterior_std or ():
        print(f"posterior sigma of decoder.{layer['name']} ({layer['size']} values): "
              f"mean {layer['mean']:.3g}, median {layer['median']:.3g}, "
              f"min {layer['min']:.3g}, max {layer['max']:.3g}")
    if result.active_units is not None and result.kl_per_dimension is not None:
        kl = ", ".join(f"{v:.2f}" for v in result.kl_per_dimension)
        print(f"active latent units: {result.active_units} of "
              f"{len(result.kl_per_dimension)}; KL per dimension (nats): {kl}")
    elif result.active_units is not None:  # a prior without a KL per dimension
        layers = ""
        if result.active_units_per_layer:
            layers = " (" + ", ".join(
                f"z{i + 1}: {a} of {n}" for i, (a, n) in
                enumerate(zip(result.active_units_per_layer, result.layer_sizes))) + ")"
        print(f"active latent units: {result.active_units}{layers}")
    sys.stdout.flush()
