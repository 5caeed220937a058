"""The native backend's training step: estimator B (eq. 7 and 10) and Adagrad, in one C call.

It serves the paper's two models: tanh MLPs, a Gaussian q_phi(z|x), and a Bernoulli
p_theta(x|z) (appendix C.1) or a Gaussian one with sigmoid mean and learned log-variance
(C.2), float32 on a CPU (`supports`). There the whole step (forward pass, the gradient of
minus the minibatch mean of the bound, and Adagrad's update) is one call of step.c, with the
backward pass written out by hand:

    l = decoder logits [L, N, D]   d(bound)/dl = x - sigmoid(l)          (Bernoulli)
    m, v = decoder output [L, N, 2D], s = sigmoid(m), w = exp(-v)       (Gaussian)
                                   d(bound)/dm = (x - s) w s (1 - s)
                                   d(bound)/dv = ((x - s)^2 w - 1) / 2
    z = mu + sigma * eps           d(bound)/dmu = d(bound)/dz - mu
                                   d(bound)/d log sigma^2 = d(bound)/dz * eps * sigma / 2
                                                            - (sigma^2 - 1) / 2
    y = h W^T + b (a linear layer) dW = dy^T h,  db = sum_n dy,  dh = dy W
    h = tanh(a)                    da = dh * (1 - h^2)

The products go through torch's own BLAS, the element-wise work is fused after them, and each
weight's Adagrad update is made block by block right after that block of its gradient, while
both are in cache: the same numbers as updating after the whole backward pass. The maths is
that of `objectives.elbo_b`; tests/test_native.py checks the bound, every gradient and the
update against autograd through it. It is kept because the benchmark measures it faster than
torch.compile of that definition (docs/performance.md); every other model and platform
trains through `aevb.compute.engine`.

`log_weights` does importance sampling's log-weights with the decoder's softplus sum in C.
"""
from __future__ import annotations

import threading

import torch
from torch import nn

from ..maths.distributions import q_sample
from ..networks.heads import Bernoulli, Gaussian, SigmoidGaussian
from ..networks.mlp import MLPNetwork
from . import calls, library


def _linears(net: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of a `networks.mlp` (Linear, Tanh, Linear, ..., Linear), else None."""
    if not isinstance(net, nn.Sequential) or len(net) % 2 == 0:
        return None
    for i, layer in enumerate(net):
        if not isinstance(layer, nn.Tanh if i % 2 else nn.Linear):
            return None
    return list(net)[::2]


def supports(model) -> bool:
    """Whether the native `Step` knows this model: tanh MLPs, a Gaussian encoder, a Bernoulli
    or Gaussian (sigmoid mean, learned log-variance) decoder, the N(0, I) prior."""
    from ..priors.standard_normal import StandardNormalPrior

    # Exact types: a subclass may compute something else in its forward.
    return (type(getattr(model, "p_z", None)) is StandardNormalPrior
            and not getattr(model.config, "classes", 0)  # a label's one-hot beside x and z
            and _mlp_with(getattr(model, "encoder", None), Gaussian)
            and _mlp_with(getattr(model, "decoder", None), Bernoulli, SigmoidGaussian)
            and _linears(model.encoder.net) is not None
            and _linears(model.decoder.net) is not None
            # (MKL refuses a product with a zero-width side)
            and all(min(layer.weight.shape) > 0 for layer in _linears(model.encoder.net)
                    + _linears(model.decoder.net)))


def _mlp_with(network, *heads) -> bool:
    """Whether `network` is a `networks.mlp` body (a subclass of MLPNetwork that only fixes
    its head counts) read by a head of exactly one of the types `heads`."""
    return (isinstance(network, MLPNetwork) and type(network).forward is MLPNetwork.forward
            and type(network.distribution) in heads)


class Step:
    """Estimator B, its gradient and Adagrad's update for a model where `supports` holds, as
    one call: `step(x, eps)` with x [N, ...] (binary, D values a point) and eps [L, N, J]
    returns L^B per data point [N] in nats (`objectives.elbo_b(model, x, eps)` up to float
    rounding), with every .grad set to d(-mean_n L^B)/d(theta, phi) and the parameters
    updated by `optimizer` (this module's Adagrad): the update is this call's declared job,
    not a side effect. With `optimizer` None it only computes the bound and the gradients. Where the bound is not finite it returns None before the backward
    pass: no update, every .grad as it was. `usable(x, eps)` says whether a call takes these
    tensors (float32, contiguous, CPU, with the library's step available); a model, .grad or
    optimizer state it cannot take raises ValueError before anything is computed.

    It keeps a checked plan of the step's pointers (`calls.plan_step`), made again when a
    parameter, .grad or optimizer state tensor moves (a new address): so it is a class.
    """

    def __init__(self, model, optimizer: "Adagrad | None"):
        if not supports(model):
            raise ValueError("the native step needs a tanh-MLP Gaussian encoder and a "
                             "Bernoulli or Gaussian MLP decoder")
        self.encoder, self.decoder = _linears(model.encoder.net), _linears(model.decoder.net)
        self.params = [p for layer in self.encoder + self.decoder
                       for p in (layer.weight, layer.bias)]
        self.optimizer = optimizer
        self.likelihood = model.decoder.distribution.name  # a key of calls.LIKELIHOODS
        self._lib = library.load()
        self._plan = None  # (key, calls.StepPlan) of the last call
        self._lock = threading.Lock()

    def usable(self, x: torch.Tensor, eps: torch.Tensor) -> bool:
        """Whether a call may take x and eps (the library's step, float32 contiguous CPU
        tensors); the model's and optimizer's tensors are checked when a plan is made."""
        return calls.lib_has_step(self._lib) and calls.usable(x, eps)

    def __call__(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor | None:
        # One call at a time: .grad and the plan are shared, and the C call releases the GIL
        # (an uncontended lock costs well under a microsecond).
        with self._lock:
            return self._step(x, eps)

    def _step(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor | None:
        for p in self.params:  # allocated once, then overwritten by every step
            if p.grad is None:
                p.grad = torch.empty_like(p)
        if self.optimizer is None:
            hyper, state = None, [(None, None)] * len(self.params)
        else:
            arguments = self.optimizer.kernel_arguments(self.params, checked=False)
            if arguments is None:
                raise ValueError("the native step does not make this optimizer's update")
            hyper, state = arguments
        # The plan holds the addresses of tensors it does not own, and keeps their storage.
        # A replaced .grad, optimizer state (load_state_dict) or parameter data (.data =,
        # .to()) lies at another address: then a new plan checks them all again. Between, a
        # step checks x and eps only: the checks of ~40 tensors cost ~0.2 ms a step.
        watched = [*self.params, *(p.grad for p in self.params),
                   *(t for pair in state for t in pair if t is not None)]
        key = (x.shape, eps.shape, [t.data_ptr() for t in watched])
        if self._plan is None or key != self._plan[0]:
            self._plan = key, None  # a refused plan is not tried again for the same tensors
            self._plan = key, self._make_plan(x, eps, state)
        if self._plan[1] is None:
            raise ValueError("the native step does not take these tensors")
        bound, done = calls.vae_step(self._lib, self._plan[1], x, eps, hyper)
        return bound if done or hyper is None else None

    def _make_plan(self, x: torch.Tensor, eps: torch.Tensor, state: list) -> calls.StepPlan:
        samples, n, j = eps.shape

        def buffer(*shape):
            return torch.empty(shape, dtype=torch.float32)

        layers, pairs = [], iter(state)
        for net, rows in (("e", n), ("d", samples * n)):
            for i, layer in enumerate(self.encoder if net == "e" else self.decoder):
                (sum_w, step_w), (sum_b, step_b) = next(pairs), next(pairs)
                layers.append(calls.LayerTensors(
                    layer.weight, layer.bias, sum_w, sum_b, step_w, step_b,
                    out=buffer(rows, layer.out_features),
                    grad_in=None if net == "e" and i == 0 else buffer(rows, layer.in_features)))
        scratch = dict(zip(calls.SCRATCH, (buffer(*shape) for shape in (
            (n, j), (samples * n, j), (n,), (samples * n,), (n, 2 * j)))))
        return calls.plan_step(layers, len(self.encoder), scratch, x.shape, eps.shape,
                                 self.likelihood)


def supports_log_weights(model) -> bool:
    """Whether `log_weights` serves this model: `supports` with a Bernoulli decoder."""
    return supports(model) and type(model.decoder.distribution) is Bernoulli


def log_weights(model, x: torch.Tensor, eps: torch.Tensor, lib) -> torch.Tensor:
    """objectives.log_weights, log p(x, z_l) - log q(z_l|x) [L, N] (nats), for a model where
    `supports` holds, with the decoder's sum of softplus over the pixels (its element-wise
    work, which at K samples per point took as long as a third of the products) in one
    compiled pass: `lib` from library.load(), float32 CPU tensors."""
    q = model.encode(x)
    z = q_sample(q, eps)  # [L, N, J]
    p = model.decode(z)  # AffineBernoulli: hidden layer h [L, N, H], weight [D, H], bias [D]
    h = p.h.reshape(-1, p.h.shape[-1])
    softplus = calls.softplus_sums(lib, torch.mm(h, p.weight.t()), p.bias)
    log_p_x_given_z = p.data_terms(x) - softplus.view(p.h.shape[:-1])
    return log_p_x_given_z + model.prior().log_prob(z) - q.log_prob(z)


class Adagrad(torch.optim.Adagrad):
    """torch.optim.Adagrad (the same options, state and checkpoints) whose update of a float32
    CPU parameter is one `calls.adagrad` pass, where torch's fused kernel makes several
    and some Python work per tensor; the native `Step` makes the same update inside its
    backward pass, from `kernel_arguments()`. What the kernel does not do (lr_decay, maximize,
    other dtypes or devices, sparse gradients, a closure) goes to torch's own step.
    """

    def __init__(self, params, lr: float, weight_decay: float, compiled: bool = True):
        try:
            super().__init__(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError):  # torch has no fused kernel for these parameters
            super().__init__(params, lr=lr, weight_decay=weight_decay)
        self._lib = library.load() if compiled else None

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
            if s is None or checked and (not calls.usable(p, s["sum"], s["step"]) or (
                    p.grad is not None and not calls.usable(p.grad))):
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
                calls.adagrad(self._lib, p, p.grad, sums, step, lr, weight_decay, eps)
        return None
