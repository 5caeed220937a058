"""The peer side of bench/ssvae.py, run inside bench/.venv-pyro (pyro-ppl 1.9.1, torch 2.13.0).

M2 in Pyro's own terms, with the model and settings of Pyro's ss-vae example
(examples/vae/ss_vae_M2.py): p(z) = N(0, I), p(y) = Cat(1/10), p(x|y, z) Bernoulli on grey
levels, q(y|x) and q(z|x, y) softplus MLPs, the discrete y enumerated in parallel by
TraceEnum_ELBO, the auxiliary classification loss scaled by `aux`, Adam, and one labelled
minibatch every N/labels minibatches, as the example interleaves them. The networks, the
labelled points and the epochs are bench/ssvae.py's. Prints one JSON object.

Usage: python peer_pyro_ssvae.py MNIST_DIR LABELLED_NPY EPOCHS BATCH LR AUX HIDDEN Z [MOST]
"""
import gzip
import json
import sys
import time

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.optim import Adam
from torch import nn


def read(path, offset, width):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset).reshape(-1, width)


def mlp(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.Softplus()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def together(a, b):
    """a [..., A] and b [..., B] broadcast over their leading axes (y is enumerated over its
    10 values on a leading axis), to be concatenated."""
    lead = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return a.expand(*lead, a.shape[-1]), b.expand(*lead, b.shape[-1])


class SSVAE(nn.Module):
    def __init__(self, hidden, z_dim, aux):
        super().__init__()
        self.z_dim, self.aux = z_dim, aux
        self.encoder_y = mlp([784, hidden, 10])
        self.encoder_z = mlp([784 + 10, hidden, 2 * z_dim])
        self.decoder = mlp([z_dim + 10, hidden, 784])

    def model(self, xs, ys=None):
        pyro.module("ss_vae", self)
        n = xs.shape[0]
        with pyro.plate("data"):
            zs = pyro.sample("z", dist.Normal(xs.new_zeros(n, self.z_dim),
                                              xs.new_ones(n, self.z_dim)).to_event(1))
            ys = pyro.sample("y", dist.OneHotCategorical(xs.new_full((n, 10), 0.1)), obs=ys)
            zs, ys = together(zs, ys)  # [(10,) N, J] and [(10,) N, 10]
            loc = torch.sigmoid(self.decoder(torch.cat([zs, ys], -1)))
            pyro.sample("x", dist.Bernoulli(loc, validate_args=False).to_event(1), obs=xs)

    def guide(self, xs, ys=None):
        with pyro.plate("data"):
            if ys is None:
                ys = pyro.sample("y", dist.OneHotCategorical(
                    logits=self.encoder_y(xs)))
            out = self.encoder_z(torch.cat(together(xs, ys), -1))
            loc, log_scale = out[..., :self.z_dim], out[..., self.z_dim:]
            pyro.sample("z", dist.Normal(loc, torch.exp(log_scale)).to_event(1))

    def model_classify(self, xs, ys):
        pyro.module("ss_vae", self)
        with pyro.plate("data"), pyro.poutine.scale(scale=self.aux):
            pyro.sample("y_aux", dist.OneHotCategorical(logits=self.encoder_y(xs)), obs=ys)

    def guide_classify(self, xs, ys):
        pass


def main(mnist_dir, labelled_npy, epochs, batch, lr, aux, hidden, z_dim, most=None):
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    x = torch.from_numpy(read(f"{mnist_dir}/train-images-idx3-ubyte.gz", 16, 784)
                         .astype(np.float32) / 255)
    y = torch.from_numpy(read(f"{mnist_dir}/train-labels-idx1-ubyte.gz", 8, 1)
                         .astype(np.int64)[:, 0])
    xt = torch.from_numpy(read(f"{mnist_dir}/t10k-images-idx3-ubyte.gz", 16, 784)
                          .astype(np.float32) / 255)
    yt = torch.from_numpy(read(f"{mnist_dir}/t10k-labels-idx1-ubyte.gz", 8, 1)
                          .astype(np.int64)[:, 0])
    labelled = torch.from_numpy(np.load(labelled_npy))
    mask = torch.zeros(len(x), dtype=torch.bool)
    mask[labelled] = True
    x_sup, y_sup = x[mask], torch.eye(10)[y[mask]]
    x_unsup = x[~mask]
    vae = SSVAE(hidden, z_dim, aux)
    optim = Adam({"lr": lr, "betas": (0.9, 0.999)})
    elbo = TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False)
    svi = SVI(vae.model, config_enumerate(vae.guide, "parallel", expand=True), optim, loss=elbo)
    svi_aux = SVI(vae.model_classify, vae.guide_classify, optim, loss=Trace_ELBO())
    sup_batches = max(1, len(x_sup) // batch)
    unsup_batches = len(x_unsup) // batch
    every = max(1, (sup_batches + unsup_batches) // sup_batches)
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x_unsup))
        sup_order = torch.randperm(len(x_sup))
        s = 0
        for i in range(min(sup_batches + unsup_batches, most or 1 << 62)):
            if i % every == 1 and s < sup_batches:
                idx = sup_order[s * batch:(s + 1) * batch]
                s += 1
                svi.step(x_sup[idx], y_sup[idx])
                svi_aux.step(x_sup[idx], y_sup[idx])
                seen += len(idx)
            else:
                u = i - s
                if u >= unsup_batches:
                    continue
                svi.step(x_unsup[order[u * batch:(u + 1) * batch]])
                seen += batch
    seconds = time.perf_counter() - start
    with torch.no_grad():
        error = float((vae.encoder_y(xt).argmax(-1) != yt).float().mean())
    print(json.dumps({"samples_per_second": seen / seconds, "seconds": seconds,
                      "samples": seen, "test_error": error, "pyro": pyro.__version__,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], int(a[2]), int(a[3]), float(a[4]), float(a[5]), int(a[6]), int(a[7]),
         int(a[8]) if len(a) > 8 else None)  # most minibatches per epoch: a smoke run
