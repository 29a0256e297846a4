"""Regularizers: what a GAN's objective adds to the loss, picked in config as a list
(`regularizers=[r1,lecam]`, one YAML each in configs/regularizers/; a loss recipe may pick some:
loss=wgan-gp picks gp, loss=wgan picks clip).

Each is a small object with hooks on either side of the game; a hook it does not override does nothing:
- D's side: `penalty(D, real, fake)` (a term that needs D: gradient penalty, R1, R2, DRAGAN),
  `logit_penalty(real_logits, fake_logits)` (a term on the D step's own outputs: LeCam) and
  `after_step(D)` (a constraint after each D update: weight clipping).
- G's side: `g_penalty(z, fake, y)` (a term on G's batch and its classes: mode seeking), `critic(...)` (what G's loss is
  taken against: D unrolled k steps) and `select(fake_logits)` (which fakes G learns from: top-k).
- Both sides, for a D with a class head (models.common.ClassHead): `class_penalty(class_logits, y, side)`, a term
  on the head's logits for the real batch (side "D") or G's fakes (side "G") and their classes (the auxiliary
  classifier).
- `at_step(step, steps)` for schedules, `state_dict` / `load_state_dict` for running state (resume).

The objective (ganrun.training.objectives) calls the hooks in list order; adding a regularizer is a
class here, a YAML in configs/regularizers/ and a test. Neither the losses nor the loop change.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def input_grad_norm(D: nn.Module, x: Tensor) -> Tensor:
    """Per-sample ||grad_x D(x)||_2, kept differentiable w.r.t. D's weights (double backward)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return grad.flatten(1).norm(2, dim=1)


def _check(value: float, name: str, low: float = 0.0, hint: str = "") -> None:
    if not value >= low:
        raise ValueError(f"regularizers.{name}={value}: must be >= {low}{hint}")


class Regularizer:
    """Base: every hook does nothing (no penalty on either side, no constraint, D as it is, every fake)."""

    paired_ok = True  # whether it works with a relativistic loss, which pairs each fake with a real sample

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        """A term for D's loss (D: a callable of images alone; for a conditional model the labels are bound)."""
        return real.new_zeros(())

    def logit_penalty(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """A term for D's loss computed from the D step's own logits (no extra pass through D)."""
        return real_logits.new_zeros(())

    @torch.no_grad()
    def after_step(self, D: nn.Module) -> None:
        """Run after each D optimizer step."""

    def g_penalty(self, z: Tensor, fake: Tensor, y: Tensor | None = None) -> Tensor:
        """A term for G's loss from its latent batch z, what G made of it and the classes asked for (None when
        G is unconditional)."""
        return fake.new_zeros(())

    def class_penalty(self, class_logits: Tensor, y: Tensor, side: str) -> Tensor:
        """A term for D's loss (side "D": the head's logits on the real batch) or G's (side "G": on G's fakes),
        given the classes y of the batch; called only when D has a class head."""
        return class_logits.new_zeros(())

    def critic(self, critic: Callable[..., Tensor], D: nn.Module, loss: Any, real: Tensor, fake: Tensor,
               cond: tuple[Tensor, ...], lr: float) -> Callable[..., Tensor]:
        """What G's loss is taken against (given the one so far: D itself)."""
        return critic

    def select(self, fake_logits: Tensor) -> Tensor:
        """The fake logits G learns from."""
        return fake_logits

    def at_step(self, step: int, steps: int) -> None:
        """Schedules that depend on the step."""

    def state_dict(self) -> dict[str, Tensor]:
        """State a resumed run needs (running averages); none by default."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Take back what state_dict gave."""


# ---------------------------------------------------------------- D's side


class GradientPenalty(Regularizer):
    """WGAN-GP (Gulrajani et al. 2017): weight * E[(||grad D(x_hat)|| - 1)^2] on random interpolates
    x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] per sample."""

    def __init__(self, weight: float = 10.0):
        _check(weight, "gp.weight", hint=" (the paper uses 10)")
        self.weight = weight

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
        x_hat = eps * real + (1 - eps) * fake.detach()
        return self.weight * (input_grad_norm(D, x_hat) - 1).pow(2).mean()


class R1(Regularizer):
    """R1 (Mescheder et al. 2018): gamma / 2 * E ||grad D(x)||^2 on real data."""

    def __init__(self, gamma: float = 10.0):
        _check(gamma, "r1.gamma")
        self.gamma = gamma

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return self.gamma / 2 * input_grad_norm(D, real).pow(2).mean()


class R2(Regularizer):
    """R2 (as in R3GAN, Huang et al. 2024): gamma / 2 * E ||grad D(G(z))||^2 on the fakes."""

    def __init__(self, gamma: float = 10.0):
        _check(gamma, "r2.gamma")
        self.gamma = gamma

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return self.gamma / 2 * input_grad_norm(D, fake).pow(2).mean()


class DRAGAN(Regularizer):
    """DRAGAN (Kodali et al. 2017): weight * E (||grad D(x~)|| - 1)^2 on real data perturbed by
    x~ = x + 0.5 * std(x) * u, u ~ U[0, 1) per element."""

    def __init__(self, weight: float = 10.0):
        _check(weight, "dragan.weight", hint=" (the paper uses 10)")
        self.weight = weight

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        perturbed = real + 0.5 * real.std() * torch.rand_like(real)
        return self.weight * (input_grad_norm(D, perturbed) - 1).pow(2).mean()


class LeCam(Regularizer):
    """LeCam regularization (Tseng et al. 2021): weight * (E relu(D(x) - a_fake)^2 + E relu(a_real - D(G(z)))^2),
    where a_real and a_fake are moving averages (decay) of D's mean output on real and fake batches,
    updated each D step before the penalty (the first step starts them at that step's means). It keeps
    D's outputs from drifting apart on a small training set; one-sided, as in the authors' code."""

    def __init__(self, weight: float = 0.3, decay: float = 0.99):
        _check(weight, "lecam.weight", hint=" (0.01-0.3 in the paper)")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"regularizers.lecam.decay={decay}: must be in [0, 1)")
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
    """WGAN's constraint (Arjovsky et al. 2017): every D parameter clamped to [-bound, bound] after each step."""

    def __init__(self, bound: float = 0.01):
        if not bound > 0:
            raise ValueError(f"regularizers.clip.bound={bound}: must be > 0 (the paper uses 0.01)")
        self.bound = bound

    @torch.no_grad()
    def after_step(self, D: nn.Module) -> None:
        for p in D.parameters():
            p.clamp_(-self.bound, self.bound)


# ---------------------------------------------------------------- G's side


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


class Unrolled(Regularizer):
    """Unrolled GAN (Metz et al. 2017): G's loss is taken against D after `steps` differentiable gradient
    steps on D's loss (unrolled_critic); D itself is not changed."""

    def __init__(self, steps: int = 5):
        if steps < 1:
            raise ValueError(f"regularizers.unroll.steps={steps}: must be >= 1 (the paper uses 5 to 10)")
        self.steps = steps

    def critic(self, critic: Callable[..., Tensor], D: nn.Module, loss: Any, real: Tensor, fake: Tensor,
               cond: tuple[Tensor, ...], lr: float) -> Callable[..., Tensor]:
        return unrolled_critic(D, loss, real, fake, cond, lr, self.steps)


def top_k_share(top_k: float, step: int, steps: int) -> float:
    """Top-k training's share of fakes at G step `step` of `steps`: 1 at the start, falling linearly
    to top_k at mid-training, then top_k (a function of the step, so resuming gets the same)."""
    return max(top_k, 1.0 - (1.0 - top_k) * (step - 1) / max(steps / 2, 1))


class TopK(Regularizer):
    """Top-k training (Sinha et al. 2020): G's loss uses only the share of each fake batch that D rates most
    real; the share falls linearly from 1 to `share` over the first half of training and stays there."""

    paired_ok = False  # it drops fakes, which a relativistic loss pairs with real samples one to one

    def __init__(self, share: float = 0.5):
        if not 0.0 < share <= 1.0:
            raise ValueError(f"regularizers.topk.share={share}: the share of fakes kept, in (0, 1] "
                             f"(0.5 to 0.75 in the paper)")
        self.share, self.keep = share, 1.0

    def at_step(self, step: int, steps: int) -> None:
        self.keep = top_k_share(self.share, step, steps)

    def select(self, fake_logits: Tensor) -> Tensor:
        """The ceil(keep * N) fake logits that D rates most real."""
        if self.keep >= 1.0:
            return fake_logits
        return fake_logits.topk(max(1, math.ceil(self.keep * fake_logits.numel()))).values


class ModeSeeking(Regularizer):
    """Mode seeking (MSGAN, Mao et al. 2019), on G's side: G is rewarded for mapping distant latent points
    to distant samples of the same condition. The term is weight * mean|z1 - z2| / (mean|x1 - x2| + eps) over
    pairs of the batch: its two halves for an unconditional G; for a conditional one, samples of the same
    class (sorted by class, each with its neighbour), as the paper pairs two draws for one condition, so the
    term is not dominated by the distance between classes. Small when G spreads its samples, large when two
    latent points collapse onto one sample. `until`: the last step the term applies (0: every step), for a
    push out of the near-identical samples a conditional G draws early in a run that leaves the rest of the
    run to the loss alone."""

    def __init__(self, weight: float = 1.0, eps: float = 1e-5, until: int = 0):
        _check(weight, "mode_seeking.weight")
        _check(until, "mode_seeking.until", hint=" (0: every step)")
        if until != int(until):
            raise ValueError(f"regularizers.mode_seeking.until={until}: a step number, or 0 for every step")
        self.weight, self.eps, self.until, self.on = weight, eps, int(until), True

    def at_step(self, step: int, steps: int) -> None:
        self.on = not self.until or step <= self.until

    def g_penalty(self, z: Tensor, fake: Tensor, y: Tensor | None = None) -> Tensor:
        if not self.on:
            return fake.new_zeros(())
        if y is None:
            half = fake.shape[0] // 2
            first, second = torch.arange(half, device=z.device), torch.arange(half, 2 * half, device=z.device)
            weights = z.new_ones(half)
        else:  # neighbours after a stable sort by class, kept where the classes match (no host sync)
            order = torch.argsort(y, stable=True)
            first, second = order[:-1], order[1:]
            weights = (y[first] == y[second]).float()
        if first.numel() == 0:
            return fake.new_zeros(())
        n = weights.sum().clamp_min(1.0)
        dx = ((fake[first] - fake[second]).abs().flatten(1).float().mean(1) * weights).sum() / n
        dz = ((z[first] - z[second]).abs().flatten(1).float().mean(1) * weights).sum() / n
        return self.weight * dz / (dx + self.eps)


# ---------------------------------------------------------------- both sides


class AuxClassifier(Regularizer):
    """The auxiliary classifier of AC-GAN (Odena et al. 2017), on a conditional D with a class head: D also
    learns to read the class of real images (weight * cross-entropy of the head on the real batch, in D's loss)
    and G is pushed to make the class it was asked for readable (weight * cross-entropy on its fakes, in G's
    loss). Unlike the paper, D's head is not also trained on fakes: it learns the classes from real images only,
    so G cannot meet it by teaching it G's own mistakes. Set by train.aux_classifier, which builds D's head."""

    def __init__(self, weight: float = 1.0):
        _check(weight, "aux_classifier.weight")
        self.weight = weight

    def class_penalty(self, class_logits: Tensor, y: Tensor, side: str) -> Tensor:
        return self.weight * F.cross_entropy(class_logits.float(), y)


def class_logits(D: nn.Module) -> Tensor | None:
    """The class head's logits from D's last forward (ClassHead), seen through the wrappers around D
    (torch.compile's, DiffAugment's, PacGAN's, DistributedDataParallel's); None when D has no head."""
    while not hasattr(D, "class_logits"):
        inner = next((getattr(D, name) for name in ("_orig_mod", "D", "module") if hasattr(D, name)), None)
        if inner is None:
            return None
        D = inner
    return D.class_logits


def class_terms(regularizers: list[Regularizer], logits: Tensor | None, y: Tensor | None, side: str,
                like: Tensor) -> Tensor:
    """The sum of the regularizers' class_penalty terms on one side (zero without a head's logits or classes)."""
    total = like.new_zeros(())
    if logits is None or y is None:
        return total
    for reg in regularizers:
        total = total + reg.class_penalty(logits, y, side)
    return total


def total_penalty(regularizers: list[Regularizer], D: nn.Module, real: Tensor, fake: Tensor,
                  logits: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """The sum of the regularizers' D-side penalties (zero without any), in list order; `logits`, the D
    step's (real, fake) outputs, feed the regularizers that work on them (LeCam)."""
    total = real.new_zeros(())
    for reg in regularizers:
        total = total + reg.penalty(D, real, fake)
        if logits is not None:
            total = total + reg.logit_penalty(*logits)
    return total
