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

The tests check bound and gradients against autograd through `objectives.elbo_b` in float64.
On the mnist-paper model a step (with the Adagrad update) takes about 1/1.2 of the autograd
step's time on a 2-core CPU (`fused_speedup` in bench/run.py).
"""
from __future__ import annotations

import torch
from torch import nn

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
    d(-mean_n L^B)/d(theta, phi) in every parameter's .grad, ready for `optimizer.step()`.
    It keeps the activations of the last minibatch shape, so it is a class.
    """

    def __init__(self, model):
        if not supports(model):
            raise ValueError("FusedStep needs a tanh-MLP Gaussian encoder and Bernoulli decoder")
        self.encoder, self.decoder = _linears(model.encoder.net), _linears(model.decoder.net)
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

    def _backward(self, name: str, dy: torch.Tensor, inputs: list, layers: list, first: bool):
        """Fills each layer's .grad from dy [B, out], the gradient at the last output; returns
        the gradient at the first input if `first`, else None. Overwrites the buffers."""
        for i in reversed(range(len(layers))):
            layer = layers[i]
            torch.mm(dy.t(), inputs[i], out=layer.weight.grad)
            torch.sum(dy, 0, out=layer.bias.grad)
            if i == 0 and not first:
                return None
            dh = torch.mm(dy, layer.weight, out=self._buffer(f"{name}d{i}", inputs[i].shape, dy))
            if i > 0:  # through the tanh that made inputs[i]
                dy = torch.ops.aten.tanh_backward.grad_input(dh, inputs[i], grad_input=dh)
        return dh

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        samples, n, j = eps.shape
        x = x.reshape(n, -1)
        for layer in self.encoder + self.decoder:
            for p in (layer.weight, layer.bias):
                if p.grad is None:  # allocated once, then overwritten in place by every step
                    p.grad = torch.empty_like(p)
        enc = self._forward("e", x, self.encoder)
        mu, log_var = enc[-1][:, :j], enc[-1][:, j:]  # [N, J] each
        sigma = torch.exp(0.5 * log_var)
        z = self._buffer("z", (samples * n, j), x)
        torch.addcmul(mu, sigma, eps, out=z.view(samples, n, j))
        dec = self._forward("d", z, self.decoder)
        logits = dec[-1].view(samples, n, -1)  # [L, N, D]
        # log p(x|z) = sum_d x_d l_d - softplus(l_d), averaged over the L samples. (Torch's
        # BCE-with-logits computes the same at about three times the cost at these sizes.)
        bound = ((x * logits).sum(-1) - torch.nn.functional.softplus(logits).sum(-1)).mean(0)
        kl = 0.5 * (mu * mu + sigma * sigma - 1.0 - log_var).sum(-1)  # [N]
        bound -= kl
        # The loss is -(1/N) sum_n bound_n; its gradient at l is (sigmoid(l) - x) / (L N).
        dl = logits.sigmoid_().sub_(x).mul_(1.0 / (samples * n))
        dz = self._backward("d", dl.view(samples * n, -1), dec, self.decoder, True)
        dz = dz.view(samples, n, j)
        de = self._buffer("de", (n, 2 * j), x)
        torch.add(dz.sum(0), mu, alpha=1.0 / n, out=de[:, :j])
        torch.mul((dz * eps).sum(0), 0.5 * sigma, out=de[:, j:])
        de[:, j:].add_(sigma * sigma - 1.0, alpha=0.5 / n)
        self._backward("e", de, enc, self.encoder, False)
        return bound
