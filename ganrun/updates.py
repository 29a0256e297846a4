"""G-update variants: how G's loss sees D (through D itself, or through D unrolled k differentiable
steps) and which fakes it learns from (all, or the top-k share D rates most real)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor, nn


def unrolled_critic(D: nn.Module, loss: Any, real: Tensor, fake: Tensor, cond: tuple[Tensor, ...],
                    lr: float, steps: int) -> Callable[..., Tensor]:
    """D as it would be after `steps` plain gradient steps (rate lr, D's learning rate) on its loss
    against this real batch and these fakes, kept differentiable (create_graph), so G's gradient
    through it accounts for how D would answer G's move (Unrolled GAN, Metz et al. 2017). Works on
    copies of D's parameters; D's own weights and gradients are untouched. Buffers (BatchNorm running
    statistics) are D's own."""
    from torch.func import functional_call

    params = {name: p.detach().requires_grad_(True) for name, p in D.named_parameters()}
    for _ in range(steps):
        d_loss = loss.d_loss(functional_call(D, params, (real, *cond)).float(),
                             functional_call(D, params, (fake, *cond)).float())
        grads = torch.autograd.grad(d_loss, list(params.values()), create_graph=True)
        params = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    return lambda x, *labels: functional_call(D, params, (x, *labels))


def top_k_share(top_k: float, step: int, steps: int) -> float:
    """Top-k training's share of fakes at G step `step` of `steps`: 1 at the start, falling linearly
    to top_k at mid-training, then top_k (a function of the step, so resuming gets the same)."""
    return max(top_k, 1.0 - (1.0 - top_k) * (step - 1) / max(steps / 2, 1))


class GUpdate:
    """How G's loss sees D: through D itself or D unrolled k steps (unroll_steps), on every fake or on
    the share `keep` that D rates most real (top-k training, Sinha et al. 2020; `at_step` anneals it)."""

    def __init__(self, unroll_steps: int = 0, top_k: float = 1.0):
        self.unroll_steps = unroll_steps
        self.top_k = top_k
        self.keep = 1.0

    def at_step(self, step: int, steps: int) -> None:
        """Set the top-k share for G step `step` of `steps`."""
        if self.top_k < 1.0:
            self.keep = top_k_share(self.top_k, step, steps)

    def critic(self, D: nn.Module, loss: Any, real: Tensor, fake: Tensor, cond: tuple[Tensor, ...],
               lr: float) -> Callable[..., Tensor]:
        """What G's loss is taken against: D, or D after unroll_steps differentiable steps."""
        return unrolled_critic(D, loss, real, fake, cond, lr, self.unroll_steps) if self.unroll_steps else D

    def select(self, fake_logits: Tensor) -> Tensor:
        """The fake logits G learns from: all of them, or the ceil(keep * N) that D rates most real."""
        if self.keep >= 1.0:
            return fake_logits
        return fake_logits.topk(max(1, math.ceil(self.keep * fake_logits.numel()))).values
