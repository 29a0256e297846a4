"""D regularizers: terms added to D's loss that need D itself, and constraints applied after D's step.

Each is a small object; an adversarial objective (ganrun.objectives) sums their penalties into D's loss
and calls their `after_step` after every D update. Adding one is a class here plus the key that turns
it on in the loss configs (see docs/contributing.md); the training loop never changes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def input_grad_norm(D: nn.Module, x: Tensor) -> Tensor:
    """Per-sample ||grad_x D(x)||_2, kept differentiable w.r.t. D's weights (double backward)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return grad.flatten(1).norm(2, dim=1)


class Regularizer:
    """Base: no penalty, no constraint."""

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        """A term for D's loss (D: a callable of images alone; for a conditional model the labels are bound)."""
        return real.new_zeros(())

    def logit_penalty(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """A term for D's loss computed from the D step's own logits (no extra pass through D)."""
        return real_logits.new_zeros(())

    @torch.no_grad()
    def after_step(self, D: nn.Module) -> None:
        """Run after each D optimizer step."""

    def state_dict(self) -> dict[str, Tensor]:
        """State a resumed run needs (running averages); none by default."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Take back what state_dict gave."""


class GradientPenalty(Regularizer):
    """WGAN-GP (Gulrajani et al. 2017): weight * E[(||grad D(x_hat)|| - 1)^2] on random interpolates
    x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] per sample."""

    def __init__(self, weight: float = 10.0):
        self.weight = weight

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
        x_hat = eps * real + (1 - eps) * fake.detach()
        return self.weight * (input_grad_norm(D, x_hat) - 1).pow(2).mean()


class R1(Regularizer):
    """R1 (Mescheder et al. 2018): gamma / 2 * E ||grad D(x)||^2 on real data."""

    def __init__(self, gamma: float):
        self.gamma = gamma

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return self.gamma / 2 * input_grad_norm(D, real).pow(2).mean()


class R2(Regularizer):
    """R2 (as in R3GAN, Huang et al. 2024): gamma / 2 * E ||grad D(G(z))||^2 on the fakes."""

    def __init__(self, gamma: float):
        self.gamma = gamma

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return self.gamma / 2 * input_grad_norm(D, fake).pow(2).mean()


class DRAGAN(Regularizer):
    """DRAGAN (Kodali et al. 2017): weight * E (||grad D(x~)|| - 1)^2 on real data perturbed by
    x~ = x + 0.5 * std(x) * u, u ~ U[0, 1) per element."""

    def __init__(self, weight: float):
        self.weight = weight

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        perturbed = real + 0.5 * real.std() * torch.rand_like(real)
        return self.weight * (input_grad_norm(D, perturbed) - 1).pow(2).mean()


class LeCam(Regularizer):
    """LeCam regularization (Tseng et al. 2021): weight * (E relu(D(x) - a_fake)^2 + E relu(a_real - D(G(z)))^2),
    where a_real and a_fake are moving averages (decay) of D's mean output on real and fake batches,
    updated each D step before the penalty (the first step starts them at that step's means). It keeps
    D's outputs from drifting apart on a small training set; one-sided, as in the authors' code."""

    def __init__(self, weight: float, decay: float = 0.99):
        self.weight, self.decay = weight, decay
        self.anchors: Tensor | None = None  # [a_real, a_fake]

    def logit_penalty(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        means = torch.stack([real_logits.detach().mean(), fake_logits.detach().mean()]).float()
        self.anchors = means if self.anchors is None else self.anchors.lerp(means, 1.0 - self.decay)
        a_real, a_fake = self.anchors[0], self.anchors[1]
        return self.weight * ((real_logits - a_fake).relu().pow(2).mean() + (a_real - fake_logits).relu().pow(2).mean())

    def state_dict(self) -> dict[str, Tensor]:
        return {} if self.anchors is None else {"anchors": self.anchors.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.anchors = state.get("anchors")


class WeightClip(Regularizer):
    """WGAN's constraint (Arjovsky et al. 2017): every D parameter clamped to [-clip, clip] after each step."""

    def __init__(self, clip: float):
        self.clip = clip

    @torch.no_grad()
    def after_step(self, D: nn.Module) -> None:
        for p in D.parameters():
            p.clamp_(-self.clip, self.clip)


def total_penalty(regularizers: list[Regularizer], D: nn.Module, real: Tensor, fake: Tensor,
                  logits: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """The sum of the regularizers' penalties (zero without any), in list order; `logits`, the D step's
    (real, fake) outputs, feed the regularizers that work on them (LeCam)."""
    total = real.new_zeros(())
    for reg in regularizers:
        total = total + reg.penalty(D, real, fake)
        if logits is not None:
            total = total + reg.logit_penalty(*logits)
    return total
