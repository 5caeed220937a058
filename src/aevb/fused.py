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

For float32 on a CPU the whole step is one call of `aevb.kernels`' compiled step (the products
through torch's own BLAS, the element-wise work fused after them), and with `Adagrad` from
this module that call also makes the update, each weight's block by block right after that
block of its gradient, while both are in cache: the same numbers as updating after the whole
backward pass. `log_weights` does importance sampling's log-weights with the decoder's
softplus sum compiled.

The tests check bound and gradients against autograd through `objectives.elbo_b` in float64,
and the compiled path against it and against this module's PyTorch path in float32.
`fused_speedup` in bench/run.py measures the step against the autograd step.
"""
from __future__ import annotations

import math
import threading

import torch
from torch import nn

from . import kernels
from .distributions import q_sample
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

    Called with x [N, ...] (binary, D values a point) and eps [L, N, J], it returns L^B per
    data point [N] in
    nats (as `objectives.elbo_b(model, x, eps)`, up to float rounding) and leaves
    d(-mean_n L^B)/d(theta, phi) in every parameter's .grad. If `optimizer` is this module's
    `Adagrad` and the compiled kernels serve the call, the call also makes the optimizer's
    step and sets `updated`; otherwise `optimizer.step()` is the caller's to make. (Such a
    call whose bound is not finite stops before the backward pass: no update, .grad as it
    was, `updated` false.)
    `compiled=False` keeps to PyTorch operations. It keeps the activations of the last
    minibatch shape and, on the compiled path, a checked plan of the step's pointers
    (`kernels.plan_step`), made again when a parameter, .grad or optimizer state tensor moves
    (a new address): so it is a class.
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
        self._plan = None  # (key, kernels.StepPlan) of the last compiled call
        self._lock = threading.Lock()

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

    def _backward(self, name: str, dy: torch.Tensor, inputs: list, layers: list, first: bool):
        """Fills each layer's .grad from dy [B, out], the gradient at the last output; returns
        the gradient at the first input if `first`, else None. Overwrites the buffers."""
        dh = None
        for i in reversed(range(len(layers))):
            layer = layers[i]
            torch.mm(dy.t(), inputs[i], out=layer.weight.grad)
            torch.sum(dy, 0, out=layer.bias.grad)
            if i > 0 or first:
                dh = torch.mm(dy, layer.weight,
                              out=self._buffer(f"{name}d{i}", inputs[i].shape, dy))
            if i > 0:  # through the tanh that made inputs[i]
                dy = torch.ops.aten.tanh_backward.grad_input(dh, inputs[i], grad_input=dh)
        return dh if first else None

    def __call__(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        # One call at a time: the activations, .grad and the plan are shared, and the compiled
        # call releases the GIL (an uncontended lock costs well under a microsecond).
        with self._lock:
            return self._step(x, eps)

    def _step(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):  # allocated once, then overwritten by every step
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.empty_like(p)
            grads = [p.grad for p in self.params]
        self.updated = False
        if kernels.lib_has_step(self._lib):
            bound = self._compiled(x, eps, grads)
            if bound is not None:
                return bound
        return self._pytorch(x.reshape(eps.shape[1], -1), eps)

    def _compiled(self, x: torch.Tensor, eps: torch.Tensor, grads: list) -> torch.Tensor | None:
        """The step in one call of aevb.kernels' step.c, with the optimizer's step inside it
        where the optimizer is this module's Adagrad and its kernel serves; None where the
        kernels do not take these tensors."""
        adagrad = self.optimizer.kernel_arguments(self.params, checked=False) \
            if isinstance(self.optimizer, Adagrad) else None
        state = adagrad[1] if adagrad else [(None, None)] * len(self.params)
        # The plan holds the addresses of tensors it does not own, and keeps their storage.
        # A replaced .grad, optimizer state (load_state_dict) or parameter data (.data =,
        # .to()) lies at another address: then a new plan checks them all again (and the step
        # takes the PyTorch path where the kernels do not take them). Between, a step checks x
        # and eps only: the checks of ~40 tensors cost ~0.2 ms a step.
        watched = [*self.params, *grads, *(t for pair in state for t in pair if t is not None)]
        key = (x.shape, eps.shape, [t.data_ptr() for t in watched])
        if self._plan is None or key != self._plan[0]:
            try:
                self._plan = key, self._make_plan(x, eps, state)
            except ValueError:
                self._plan = key, None
        if self._plan[1] is None or not kernels.usable(x, eps):
            return None
        bound, done = kernels.vae_step(self._lib, self._plan[1], x, eps,
                                       adagrad[0] if adagrad else None)
        self.updated = done and adagrad is not None
        return bound

    def _make_plan(self, x: torch.Tensor, eps: torch.Tensor, state: list) -> kernels.StepPlan:
        samples, n, j = eps.shape

        def buffer(*shape):
            return torch.empty(shape, dtype=torch.float32)

        layers, pairs = [], iter(state)
        for net, rows in (("e", n), ("d", samples * n)):
            for i, layer in enumerate(self.encoder if net == "e" else self.decoder):
                (sw, step_w), (sb, step_b) = next(pairs), next(pairs)
                d_in = None if net == "e" and i == 0 else buffer(rows, layer.in_features)
                layers.append([layer.weight, layer.bias, layer.weight.grad, layer.bias.grad,
                               sw, sb, step_w, step_b, buffer(rows, layer.out_features), d_in])
        extras = [buffer(*shape) for shape in
                  ((n, j), (samples * n, j), (n,), (samples * n,), (n, 2 * j))]
        return kernels.plan_step(layers, len(self.encoder), extras, x.shape, eps.shape)

    @torch.no_grad()
    def _pytorch(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        samples, n, j = eps.shape
        enc = self._forward("e", x, self.encoder)
        mu, log_var = enc[-1][:, :j], enc[-1][:, j:]  # [N, J] each
        z = self._buffer("z", (samples * n, j), x)
        sigma = torch.exp(0.5 * log_var)
        torch.addcmul(mu, sigma, eps, out=z.view(samples, n, j))
        kl = 0.5 * (mu * mu + sigma * sigma - 1.0 - log_var).sum(-1)  # [N]
        dec = self._forward("d", z, self.decoder)
        logits = dec[-1]  # [L N, D]
        # log p(x|z) = sum_d x_d l_d - softplus(l_d), averaged over the L samples. (Torch's
        # BCE-with-logits computes the same at about three times the cost at these sizes.)
        l3 = logits.view(samples, n, -1)
        bound = ((x * l3).sum(-1) - torch.nn.functional.softplus(l3).sum(-1)).mean(0) - kl
        # The loss is -(1/N) sum_n bound_n; its gradient at l is (sigmoid(l) - x) / (L N).
        l3.sigmoid_().sub_(x).mul_(1.0 / (samples * n))
        dz = self._backward("d", logits, dec, self.decoder, True).view(samples, n, j)
        de = self._buffer("de", (n, 2 * j), x)
        torch.add(dz.sum(0), mu, alpha=1.0 / n, out=de[:, :j])
        torch.mul((dz * eps).sum(0), 0.5 * sigma, out=de[:, j:])
        de[:, j:].add_(sigma * sigma - 1.0, alpha=0.5 / n)
        self._backward("e", de, enc, self.encoder, False)
        return bound


def log_weights(model, x: torch.Tensor, eps: torch.Tensor, lib) -> torch.Tensor:
    """objectives.log_weights, log p(x, z_l) - log q(z_l|x) [L, N] (nats), for a model where
    `supports` holds, with the decoder's sum of softplus over the pixels (its element-wise
    work, which at K samples per point took as long as a third of the products) in one
    compiled pass: `lib` from aevb.kernels.load(), float32 CPU tensors."""
    q = model.encode(x)
    z = q_sample(q, eps)  # [L, N, J]
    p = model.decode(z)  # AffineBernoulli: hidden layer h [L, N, H], weight [D, H], bias [D]
    h = p.h.reshape(-1, p.h.shape[-1])
    softplus = kernels.softplus_sums(lib, torch.mm(h, p.weight.t()), p.bias)
    log_p_x_given_z = p.data_terms(x) - softplus.view(p.h.shape[:-1])
    return log_p_x_given_z + model.prior().log_prob(z) - q.log_prob(z)


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

    def kernel_arguments(self, params: list | None = None, checked: bool = True):
        """((lr, weight decay, eps), [(sum of squares, step count) of each of `params`, by
        default the optimizer's]) if the kernel serves each of them as they are now; else
        None. `checked=False` leaves the tensors' checks to the caller."""
        if self._lib is None or len(self.param_groups) != 1:
            return None
        group = self.param_groups[0]
        if group["lr_decay"] != 0 or group["maximize"] or group["differentiable"]:
            return None
        state = []
        for p in group["params"] if params is None else params:
            s = self.state.get(p)
            if s is None or checked and (not kernels.usable(p, s["sum"], s["step"]) or (
                    p.grad is not None and not kernels.usable(p.grad))):
                return None
            state.append((s["sum"], s["step"]))
        return (group["lr"], group["weight_decay"], group["eps"]), state

    @torch.no_grad()
    def step(self, closure=None):
        arguments = self.kernel_arguments() if closure is None else None
        if arguments is None:
            return super().step(closure)
        (lr, weight_decay, eps), state = arguments
        for p, (sums, step) in zip(self.param_groups[0]["params"], state):
            if p.grad is not None:
                kernels.adagrad(self._lib, p, p.grad, sums, step, lr, weight_decay, eps)
        return None
