"""A training step of estimator B (eq. 7 and 10) with the backward pass written out, for speed.

`objectives.elbo_b` builds the bound from distribution objects and lets autograd record every
operation. At the paper's minibatch of M = 100 on a CPU that bookkeeping, fresh tensors for
every intermediate and some forty small kernels take more time than the matrix products. For
the paper's networks (tanh MLPs, Gaussian q_phi(z|x), Bernoulli p_theta(x|z)) `FusedStep`
computes the same bound and the gradient of its minibatch mean by hand, into buffers it keeps
from step to step:

    l = decoder logits [L, N, D]   d(bound)/dl = x - sigmoid(l)
    z = mu + sigma * eps           d(bound)/dmu = d(bound)/dz - mu
                                   d(bound)/d log sigma^2 = d(bound)/dz * eps * sigma / 2
                                                            - (sigma^2 - 1) / 2
    y = h W^T + b (a linear layer) dW = dy^T h,  db = sum_n dy,  dh = dy W
    h = tanh(a)                    da = dh * (1 - h^2)

For float32 on a CPU the element-wise work runs in `aevb.kernels` (compiled C: the likelihood
and its gradient in one pass, each tanh's backward with the bias gradient below it, the
latent layer's forward and backward), and with `Adagrad` from this module the step updates
each layer as soon as the backward pass is done with its weights, while they and their
gradient are still in cache: the same numbers as updating after the whole backward pass.

The tests check bound and gradients against autograd through `objectives.elbo_b` in float64,
and the compiled path against it and against this module's PyTorch path in float32.
`fused_speedup` in bench/run.py measures the step against the autograd step.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import kernels
from .networks import BernoulliDecoder, GaussianEncoder


def _linears(net: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of a `networks.mlp` (Linear, Tanh, Linear, ..., Linear), else None."""
    if not isinstance(net, nn.Sequential) or len(net) % 2 == 0:
        return None
    for i, layer in enumerate(net):
        if not isinstance(layer, nn.Tanh if i % 2 else nn.Linear):
            return None
    return list(net)[::2]


def supports(model) -> bool:
    """Whether `FusedStep` knows this model: a tanh-MLP Gaussian encoder, Bernoulli decoder."""
    # Exact types: a subclass may compute something else in its forward.
    return (type(getattr(model, "encoder", None)) is GaussianEncoder
            and type(getattr(model, "decoder", None)) is BernoulliDecoder
            and _linears(model.encoder.net) is not None
            and _linears(model.decoder.net) is not None)


class FusedStep:
    """Estimator B and the gradient of its minibatch mean for a model where `supports` holds.

    Called with x [N, D] (binary) and eps [L, N, J], it returns L^B per data point [N] in
    nats (as `objectives.elbo_b(model, x, eps)`, up to float rounding) and leaves
    d(-mean_n L^B)/d(theta, phi) in every parameter's .grad. If `optimizer` is this module's
    `Adagrad` and the compiled kernels serve the call, the call also makes the optimizer's
    step and sets `updated`; otherwise `optimizer.step()` is the caller's to make. (Such a
    call whose bound is not finite stops before the backward pass: no update, .grad as it
    was, `updated` false.)
    `compiled=False` keeps to PyTorch operations. It keeps the activations of the last
    minibatch shape, so it is a class.
    """

    def __init__(self, model, optimizer: torch.optim.Optimizer | None = None,
                 compiled: bool = True):
        if not supports(model):
            raise ValueError("FusedStep needs a tanh-MLP Gaussian encoder and Bernoulli decoder")
        self.encoder, self.decoder = _linears(model.encoder.net), _linears(model.decoder.net)
        self.params = [p for layer in self.encoder + self.decoder
                       for p in (layer.weight, layer.bias)]
        self.optimizer = optimizer
        self.updated = False
        self._lib = kernels.load() if compiled else None
        self._buffers: dict[str, torch.Tensor] = {}

    def _buffer(self, name: str, shape: tuple, like: torch.Tensor) -> torch.Tensor:
        b = self._buffers.get(name)
        if b is None or b.shape != shape or b.dtype != like.dtype or b.device != like.device:
            b = self._buffers[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return b

    def _forward(self, name: str, h: torch.Tensor, layers: list) -> list[torch.Tensor]:
        """Each layer's input (the tanh outputs after the first) and, last, the output."""
        out = [h]
        for i, layer in enumerate(layers):
            y = self._buffer(f"{name}{i}", (h.shape[0], layer.out_features), h)
            torch.addmm(layer.bias, h, layer.weight.t(), out=y)
            h = y.tanh_() if i < len(layers) - 1 else y
            out.append(h)
        return out

    def _backward(self, name: str, dy: torch.Tensor, inputs: list, layers: list, first: bool,
                  lib, update):
        """Fills each layer's .grad from dy [B, out], the gradient at the last output; returns
        the gradient at the first input if `first`, else None. Overwrites the buffers. With
        `lib` the last layer's bias .grad already holds dy's column sums (the kernel that made
        dy wrote them), and each tanh's backward writes those of the layer below. `update(p)`,
        if given, steps each parameter once the pass no longer needs it."""
        dh = None
        for i in reversed(range(len(layers))):
            layer = layers[i]
            torch.mm(dy.t(), inputs[i], out=layer.weight.grad)
            if lib is None:
                torch.sum(dy, 0, out=layer.bias.grad)
            if i > 0 or first:
                dh = torch.mm(dy, layer.weight,
                              out=self._buffer(f"{name}d{i}", inputs[i].shape, dy))
            if update is not None:
                update(layer.weight)
                update(layer.bias)
            if i > 0:  # through the tanh that made inputs[i]
                if lib is None:
                    dy = torch.ops.aten.tanh_backward.grad_input(dh, inputs[i], grad_input=dh)
                else:
                    kernels.tanh_backward(lib, dh, inputs[i], layers[i - 1].bias.grad)
                    dy = dh
        return dh if first else None

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        samples, n, j = eps.shape
        x = x.reshape(n, -1)
        for p in self.params:
            if p.grad is None:  # allocated once, then overwritten in place by every step
                p.grad = torch.empty_like(p)
        lib = self._lib
        if lib is not None and not kernels.usable(x, eps, *self.params,
                                                  *(p.grad for p in self.params)):
            lib = None
        update = self.optimizer.compiled_update() \
            if lib is not None and isinstance(self.optimizer, Adagrad) else None
        self.updated = update is not None
        enc = self._forward("e", x, self.encoder)
        mu, log_var = enc[-1][:, :j], enc[-1][:, j:]  # [N, J] each
        z = self._buffer("z", (samples * n, j), x)
        if lib is None:
            sigma = torch.exp(0.5 * log_var)
            torch.addcmul(mu, sigma, eps, out=z.view(samples, n, j))
            kl = 0.5 * (mu * mu + sigma * sigma - 1.0 - log_var).sum(-1)  # [N]
        else:
            sigma, kl = self._buffer("sigma", (n, j), x), self._buffer("kl", (n,), x)
            kernels.gaussian_latent(lib, enc[-1], eps, sigma, z.view(samples, n, j), kl)
        dec = self._forward("d", z, self.decoder)
        logits = dec[-1]  # [L N, D]
        if lib is None:
            # log p(x|z) = sum_d x_d l_d - softplus(l_d), averaged over the L samples. (Torch's
            # BCE-with-logits computes the same at about three times the cost at these sizes.)
            l3 = logits.view(samples, n, -1)
            bound = ((x * l3).sum(-1) - torch.nn.functional.softplus(l3).sum(-1)).mean(0) - kl
            # The loss is -(1/N) sum_n bound_n; its gradient at l is (sigmoid(l) - x) / (L N).
            l3.sigmoid_().sub_(x).mul_(1.0 / (samples * n))
        else:
            rows = self._buffer("rows", (samples * n,), x)
            bound = kernels.bernoulli_logits(lib, logits, x, kl, rows, self.decoder[-1].bias.grad)
        if update is not None and not math.isfinite(float(bound.sum())):
            # A non-finite bound must not reach the weights (the trainer stops on it): no
            # backward pass and no update; .grad keeps what it held.
            self.updated = False
            return bound
        dz = self._backward("d", logits, dec, self.decoder, True, lib, update)
        dz = dz.view(samples, n, j)
        de = self._buffer("de", (n, 2 * j), x)
        if lib is None:
            torch.add(dz.sum(0), mu, alpha=1.0 / n, out=de[:, :j])
            torch.mul((dz * eps).sum(0), 0.5 * sigma, out=de[:, j:])
            de[:, j:].add_(sigma * sigma - 1.0, alpha=0.5 / n)
        else:
            kernels.gaussian_latent_backward(lib, dz, eps, enc[-1], sigma, de,
                                             self.encoder[-1].bias.grad)
        self._backward("e", de, enc, self.encoder, False, lib, update)
        return bound


class Adagrad(torch.optim.Adagrad):
    """torch.optim.Adagrad (the same options, state and checkpoints) whose update of a float32
    CPU parameter is one `kernels.adagrad` pass, where torch's fused kernel makes several
    and some Python work per tensor. `FusedStep` calls `compiled_update()`'s function per
    parameter from inside its backward pass. What the kernel does not do (lr_decay, maximize,
    other dtypes or devices, sparse gradients, a closure) goes to torch's own step.
    """

    def __init__(self, params, lr: float, weight_decay: float, compiled: bool = True):
        try:
            super().__init__(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError):  # torch has no fused kernel for these parameters
            super().__init__(params, lr=lr, weight_decay=weight_decay)
        self._lib = kernels.load() if compiled else None

    def compiled_update(self):
        """A function that makes one parameter's step with the kernel, if the kernel serves
        every parameter as they are now; else None."""
        if self._lib is None or len(self.param_groups) != 1:
            return None
        group = self.param_groups[0]
        if group["lr_decay"] != 0 or group["maximize"] or group["differentiable"]:
            return None
        for p in group["params"]:
            state = self.state[p]
            if not kernels.usable(p, state["sum"], state["step"]) or (
                    p.grad is not None and not kernels.usable(p.grad)):
                return None
        return self._update

    def _update(self, p: torch.Tensor) -> None:
        group, state = self.param_groups[0], self.state[p]
        kernels.adagrad(self._lib, p, p.grad, state["sum"], state["step"], group["lr"],
                        group["weight_decay"], group["eps"])

    @torch.no_grad()
    def step(self, closure=None):
        update = self.compiled_update() if closure is None else None
        if update is None:
            return super().step(closure)
        for p in self.param_groups[0]["params"]:
            if p.grad is not None:
                update(p)
        return None
