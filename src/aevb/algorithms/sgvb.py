"""AEVB: minibatch SGVB on an objective f(model, x, eps) -> [M] nats (section 2.3,
Algorithm 1), eagerly, compiled by torch.compile (`aevb.compute.engine`) or by the native step."""
from __future__ import annotations

import torch

from ..compute import distributed, engine
from ..maths.distributions import draw_around
from ..maths.objectives import ESTIMATORS, elbo_beta, warmup_beta
from .base import Algorithm, ObjectiveModule, descend, draw_eps


class AevbStep:
    """Minibatch SGVB (Algorithm 1): eps ~ N(0, I) of shape [L, M, J], then a step on minus the
    mean of `objective` (eq. 8 divided by N: step sizes do not scale with the dataset size).
    With `compiled`, the loss (forward and backward graphs) and the optimizer's update run
    as torch.compile made them, for minibatches of `batch_size`. With `kl_weight`, a function
    that gives the KL weight beta before each step (a warm-up), the objective is called as
    objective(model, x, eps, beta) (`objectives.elbo_beta`)."""

    def __init__(self, model, optimizer, objective, mc_samples: int, compiled: bool = False,
                 batch_size: int = 0, kl_weight=None):
        self.model, self.optimizer, self.mc_samples = model, optimizer, mc_samples
        self.kl_weight = kl_weight
        self.loss = distributed.wrap(ObjectiveModule(model, objective))
        self.forward, self.update = self._mean_loss, optimizer.step
        if compiled:
            self.forward = engine.compile_loss(self._mean_loss, batch_size)
            self.update = engine.compile_update(optimizer)

    def _mean_loss(self, x: torch.Tensor, eps: torch.Tensor, *extra) -> torch.Tensor:
        return -self.loss(x, eps, *extra).mean()

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        self.take(x, draw_eps(self.model, len(idx), self.mc_samples, noise, x.device))

    def take(self, x: torch.Tensor, eps: torch.Tensor, *extra) -> None:
        """The step with this noise eps [L, M, J] (and `extra`, the objective's own inputs)."""
        if self.kl_weight is not None:
            # a tensor, so that a compiled loss does not recompile for every new value
            extra = (torch.tensor(float(self.kl_weight()), device=x.device),)
        descend(self.optimizer, self.forward(x, eps, *extra), self.update)


class NativeAevbStep:
    """`AevbStep` for estimator B with Adagrad, made in one call of the native step
    (`engine.backend("native").make_step`: bound, gradient and update together). A minibatch the native
    step does not take (another dtype or layout) goes through `fallback`, the eager step."""

    def __init__(self, model, optimizer, mc_samples: int):
        from ..compute import engine

        self.model, self.mc_samples = model, mc_samples
        self.native = engine.backend("native").make_step(model, optimizer)
        self.fallback = AevbStep(model, optimizer, ESTIMATORS["B"], mc_samples)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        from .base import NonFinite

        eps = draw_eps(self.model, len(idx), self.mc_samples, noise, x.device)
        if self.native.usable(x, eps):
            try:
                bound = self.native(x, eps)  # the whole step, update included
            except ValueError:  # tensors it does not take: refused before any work
                pass
            else:
                if bound is None:
                    raise NonFinite(float("nan"))
                return
        self.fallback.take(x, eps)


class LabelledStep(AevbStep):
    """`AevbStep` for a model with a label (`aevb.labelled`): each minibatch point's share of
    M2's J (`semi_supervised.m2_objective`: L(x, y) where its label is observed, U(x) where
    not), plus, where the model has a classifier, `weight` times the mean log q_phi(y|x) of
    a minibatch of labelled points drawn (with replacement, from the step's noise generator)
    from `labels.x`, binarized by the same generator when `binarize`: eq. 9 of Kingma et al.
    (2014) divided by N. A conditional VAE (no classifier) is the first part alone."""

    def __init__(self, model, optimizer, estimator, mc_samples: int, labels, weight: float,
                 binarize: bool, compiled: bool = False, batch_size: int = 0):
        from ..maths.semi_supervised import classification_log_likelihood, m2_objective

        def objective(model, x, eps, y, x_l, y_l):  # [M] nats
            j = m2_objective(model, x, y, eps, estimator)
            if x_l is None:
                return j
            return j + weight * classification_log_likelihood(model, x_l, y_l).mean()

        super().__init__(model, optimizer, objective, mc_samples, compiled, batch_size)
        self.labels, self.binarize = labels, binarize
        self.classified = model.classifier is not None and len(labels.x) > 0
        self.labelled_batch = min(batch_size or 100, len(labels.x))

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        eps = draw_eps(self.model, len(idx), self.mc_samples, noise, x.device)
        x_l = y_l = None
        if self.classified:
            pick = torch.randint(len(self.labels.x), (self.labelled_batch,), generator=noise,
                                 device=x.device)
            x_l, y_l = self.labels.x[pick], self.labels.labelled_y[pick]
            if self.binarize:
                x_l = torch.bernoulli(x_l, generator=noise)
            if self.labels.spread is not None:  # M1 + M2's feature draws
                x_l = draw_around(x_l, self.labels.spread[pick], noise)
        self.take(x, eps, self.labels.y[idx], x_l, y_l)


class SGVB(Algorithm):
    """Auto-Encoding VB: encoder and decoder trained together on an SGVB estimator
    (`--estimator` A, B or iwae; B with `--kl-weight`/`--kl-warmup` is the beta-weighted
    bound)."""

    name, label = "aevb", "AEVB"

    def check(self, config):
        if config.conditional and (config.kl_weight != 1 or config.kl_warmup):
            return "kl-weight and kl-warmup apply to models without a label for now"
        if config.estimator != "B" and not config.conditional:
            return super().check(config)
        return None

    def why_not_native(self, config) -> str | None:
        if not config.kernels:
            return "switched off (kernels false)"
        if config.conditional:
            return "it serves models without a label"
        if config.estimator != "B" or config.kl_weight != 1 or config.kl_warmup:
            return "it serves only estimator B with the KL weight 1"
        return None

    def make_step(self, config, model, optimizer, state, engine_name="eager",
                  samples_done=lambda: 0, n_data=0, labels=None):
        if engine_name == "native":
            return NativeAevbStep(model, optimizer, config.mc_samples)
        compiled = dict(compiled=engine_name == "compiled", batch_size=config.batch_size)
        if labels is not None:
            return LabelledStep(model, optimizer, ESTIMATORS[config.estimator],
                                config.mc_samples, labels, config.classifier_weight,
                                bool(config.binarize), **compiled)
        if config.kl_weight != 1 or config.kl_warmup:
            def beta():
                return warmup_beta(samples_done(), config.kl_warmup, config.kl_weight)

            return AevbStep(model, optimizer, elbo_beta, config.mc_samples, kl_weight=beta,
                            **compiled)
        return AevbStep(model, optimizer, ESTIMATORS[config.estimator], config.mc_samples,
                        **compiled)
