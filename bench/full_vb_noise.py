"""How full-vb should draw theta (appendix F): one draw per minibatch (what aevb does) against
an independent draw per data point (the variance the local reparameterisation trick of Kingma,
Salimans & Welling 2015 reaches for linear layers, here computed exactly with torch.func.vmap).

For a trained full-vb run, a fixed minibatch of M training points and R repeats of the noise,
it prints the gradient's total variance (sum over coordinates) for the decoder's means, its
log sigmas and the encoder, and the time of one gradient.

    python bench/full_vb_noise.py RUN_DIR [--batch 100] [--repeats 100]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.func import vmap

from aevb.rundir.checkpoint import load, read_config
from aevb.evaluation.evaluate import evaluation_set
from aevb.full_vb import full_vb_bound
from aevb.rundir.evaluations import dataset_of_run


def gradients(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    groups = {"decoder mu": model.decoder.parameters(),
              "decoder log sigma": model.theta_posterior.log_std,
              "encoder": model.encoder.parameters()}
    return {name: torch.cat([p.grad.flatten() for p in params]) for name, params in
            groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load(args.run_dir).train()
    info = read_config(args.run_dir)
    n_data = info["data"]["n_train"]
    x = evaluation_set(dataset_of_run(args.run_dir).train, "train", 0, True)[:args.batch]
    J = model.config.latent_dim
    g = torch.Generator().manual_seed(0)

    def shared():
        eps = torch.randn(1, len(x), J, generator=g)
        return -full_vb_bound(model, x, eps, model.theta_posterior.noise(g), n_data).mean()

    def per_point():
        eps = torch.randn(1, len(x), J, generator=g)
        zeta = [torch.randn(len(x), *t.shape, generator=g) for t in model.theta_posterior.log_std]

        def one(zeta_i, x_i, eps_i):  # one point, its own theta
            return full_vb_bound(model, x_i[None], eps_i[:, None], zeta_i, n_data)[0]

        return -vmap(one, in_dims=(0, 0, 1))(zeta, x, eps).mean()

    print(f"{args.run_dir}: N = {n_data}, M = {len(x)}, R = {args.repeats}, 1 thread")
    print("| theta drawn | decoder mu | decoder log sigma | encoder | ms per gradient |")
    print("|---|---:|---:|---:|---:|")
    for name, loss in (("once per minibatch", shared), ("once per data point", per_point)):
        grads, start = [], time.perf_counter()
        for _ in range(args.repeats):
            grads.append(gradients(model, loss()))
        ms = (time.perf_counter() - start) / args.repeats * 1e3
        total = {k: float(torch.stack([d[k] for d in grads]).var(0).sum()) for k in grads[0]}
        print(f"| {name} | {total['decoder mu']:.4g} | {total['decoder log sigma']:.4g} | "
              f"{total['encoder']:.4g} | {ms:.1f} |")


if __name__ == "__main__":
    main()
