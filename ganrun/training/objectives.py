"""Objectives: what one training step does. The loop calls `objective.step(...)` and nothing else.

`Adversarial` is a GAN's: n_critic D updates, then one G update, composed from a logit loss
(ganrun.training.losses) and a list of regularizers (ganrun.training.regularizers) with hooks on D's side
(gradient penalty, R1, R2, DRAGAN, LeCam, weight clipping) and G's (mode seeking, unrolling, top-k).
`VAEObjective` is the VAE baseline's (model=vae): both networks minimise -ELBO on one batch. Both return
a dict of scalar tensors; only the loop turns them into numbers, on logging steps.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from ganrun.models.common import eval_mode, noise
from ganrun.training.health import health
from ganrun.models.vae import ELBO
from ganrun.training.losses import Loss
from ganrun.training.precision import FP32, Precision, apply_update, grad_norm
from ganrun.errors import ConfigError
from ganrun.training.regularizers import Regularizer, class_logits, class_terms, total_penalty

Sync = Callable[[nn.Module], None] | None


def _split(batch: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor | None]:
    """(images, labels or None) from what a dataset's batches yield."""
    return batch if isinstance(batch, tuple) else (batch, None)


class Adversarial:
    """A GAN's objective: a logit loss and a list of regularizers, n_critic D updates per G update.
    skip_nonfinite: an update whose loss is NaN/inf is skipped (counted in "skipped"); this checks the
    loss on the host every step, a sync the default path avoids."""

    def __init__(self, loss: Loss, regularizers: list[Regularizer] | None = None, n_critic: int = 1,
                 skip_nonfinite: bool = False):
        self.loss, self.regularizers = loss, list(regularizers or [])
        self.n_critic, self.skip_nonfinite = n_critic, skip_nonfinite
        if loss.paired and not all(reg.paired_ok for reg in self.regularizers):
            bad = next(type(reg).__name__ for reg in self.regularizers if not reg.paired_ok)
            raise ConfigError(f"regularizers: {bad} drops fakes, which a paired (relativistic) loss compares with "
                              f"real samples one to one; drop it or pick another loss")

    @property
    def probability(self) -> bool:
        return self.loss.probability

    def at_step(self, step: int, steps: int) -> None:
        """Schedules that depend on the step (top-k's share)."""
        for reg in self.regularizers:
            reg.at_step(step, steps)

    def state_dict(self) -> dict[str, Any]:
        """The regularizers' running state (LeCam's averages), for checkpoints."""
        return {"regularizers": [reg.state_dict() for reg in self.regularizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for reg, saved in zip(self.regularizers, state.get("regularizers", [])):
            reg.load_state_dict(saved)

    def step(self, G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
             batches: Iterator[Any], want_stats: bool, precision: Precision = FP32,
             sync: Sync = None) -> dict[str, Tensor]:
        """n_critic D updates then one G update; returns scalar tensors (stats only when want_stats).
        sync(module), when given, runs after each backward (data-parallel training averages the gradients
        over the ranks there)."""
        out: dict[str, Tensor] = {}
        skipped, n_critic, skip_nonfinite = 0, self.n_critic, self.skip_nonfinite
        for i in range(n_critic):
            real, y, z, fake, real_logits, fake_logits, loss_D, penalty, stepped = self.d_step(
                G, D, opt_D, batches, n_critic, want_stats and i == n_critic - 1, skip_nonfinite, precision, sync, out)
            skipped += not stepped
        loss_G, stepped = self.g_step(G, D, opt_G, opt_D, real, y, (z, fake), n_critic, want_stats, skip_nonfinite,
                                      precision, sync, out, (real_logits, fake_logits))
        skipped += not stepped
        if skip_nonfinite:
            out["skipped"] = torch.tensor(float(skipped))
        out.update({"loss/D": loss_D.detach(), "loss/G": loss_G.detach(), "loss/penalty": penalty.detach()})
        out.setdefault("health/d_real_sign", real_logits.detach().sign().mean())  # every step: ADA reads it
        return out

    def d_step(self, G: nn.Module, D: nn.Module, opt_D: torch.optim.Optimizer, batches: Iterator[Any],
               n_critic: int, measure: bool, skip_nonfinite: bool, precision: Precision, sync: Sync,
               out: dict[str, Tensor]) -> tuple[Any, ...]:
        """One D update on the next real batch and fresh fakes (kept with their graph when n_critic is 1:
        the G step reuses that batch)."""
        D_plain = getattr(D, "_orig_mod", D)  # double backward goes through the plain (uncompiled) D
        real, y = _split(next(batches))  # y: class labels for a conditional model, else None
        cond = () if y is None else (y,)  # G and D get the labels; fakes take the real batch's classes
        z = noise(G, real.shape[0], real.device)
        with precision.autocast():
            if n_critic == 1:
                fake = G(z, *cond)
            else:
                with torch.no_grad():
                    fake = G(z, *cond)
            real_logits = D(real, *cond).float()
            heads = class_logits(D)  # the class head's reading of the real batch (a D with one)
            fake_logits = D(fake.detach(), *cond).float()
            loss_D = self.loss.d_loss(real_logits, fake_logits)
        with precision.autocast(penalty=True):
            critic = D_plain if y is None else (lambda x: D_plain(x, y))
            penalty = total_penalty(self.regularizers, critic, real, fake.detach(), (real_logits, fake_logits))
            penalty = penalty + class_terms(self.regularizers, heads, y, "D", penalty)
        opt_D.zero_grad(set_to_none=True)

        def look() -> None:
            out["grad_norm/D"] = grad_norm(D)

        stepped = apply_update(loss_D + penalty, "D", (opt_D,), (D,), precision, sync, skip_nonfinite,
                               look if measure else None)
        if stepped:
            for reg in self.regularizers:
                reg.after_step(D)
        return real, y, z, fake, real_logits, fake_logits, loss_D, penalty, stepped

    def g_step(self, G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
               real: Tensor, y: Tensor | None, z_fake: tuple[Tensor, Tensor], n_critic: int, want_stats: bool,
               skip_nonfinite: bool, precision: Precision, sync: Sync, out: dict[str, Tensor],
               d_logits: tuple[Tensor, Tensor]) -> tuple[Tensor, bool]:
        """One G update through D (frozen), on the D step's fakes or, after several D steps, fresh ones;
        the regularizers' G-side hooks pick the critic, the fakes it learns from and add their terms."""
        cond = () if y is None else (y,)
        z, fake = z_fake
        with precision.autocast():
            if n_critic > 1:
                z = noise(G, real.shape[0], real.device)
                fake = G(z, *cond)
            D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
            critic, lr = D, opt_D.param_groups[0]["lr"]
            for reg in self.regularizers:
                critic = reg.critic(critic, getattr(D, "_orig_mod", D), self.loss, real, fake, cond, lr)
            fake_logits = critic(fake, *cond).float()
            heads = class_logits(D)  # the class head's reading of G's fakes
            for reg in self.regularizers:
                fake_logits = reg.select(fake_logits)
            if self.loss.paired:  # a relativistic loss compares each fake with a real sample
                loss_G = self.loss.g_loss(fake_logits, critic(real, *cond).float())
            else:
                loss_G = self.loss.g_loss(fake_logits)
            for reg in self.regularizers:
                loss_G = loss_G + reg.g_penalty(z, fake, y)
            loss_G = loss_G + class_terms(self.regularizers, heads, y, "G", loss_G)
        opt_G.zero_grad(set_to_none=True)

        def look() -> None:
            out["grad_norm/G"] = grad_norm(G)
            out.update(self.loss.stats(d_logits[0].detach(), d_logits[1].detach()))
            out.update(health(real, fake.detach(), d_logits[0].detach(), y))

        stepped = apply_update(loss_G, "G", (opt_G,), (G,), precision, sync, skip_nonfinite,
                               look if want_stats else None, after_backward=lambda: D.requires_grad_(True))
        return loss_G, stepped


class VAEObjective:
    """The VAE baseline (model=vae): G is the decoder, D the encoder (its `elbo` the objective); both
    minimise -ELBO on one batch (the reparameterised z = mu + sigma * eps carries the gradient into the
    encoder). loss/G: -ELBO per sample (nats, beta-weighted); vae/recon and vae/kl: its two terms."""

    probability = False

    def __init__(self, elbo: ELBO, skip_nonfinite: bool = False):
        self.elbo, self.skip_nonfinite = elbo, skip_nonfinite

    def at_step(self, step: int, steps: int) -> None:
        """No schedule."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""

    def step(self, G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
             batches: Iterator[Any], want_stats: bool, precision: Precision = FP32,
             sync: Sync = None) -> dict[str, Tensor]:
        """One VAE update; the GAN loss and n_critic do not apply."""
        skip_nonfinite = self.skip_nonfinite
        real, _ = _split(next(batches))
        with precision.autocast():
            mu, logvar = D(real)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            recon = G(z)
        terms = self.elbo(real.float(), recon.float(), mu.float(), logvar.float())
        opt_G.zero_grad(set_to_none=True)
        opt_D.zero_grad(set_to_none=True)
        out = {"loss/G": terms["loss"].detach(), "vae/recon": terms["recon"].detach(), "vae/kl": terms["kl"].detach()}

        def look() -> None:
            out["grad_norm/G"], out["grad_norm/D"] = grad_norm(G), grad_norm(D)
            with torch.no_grad(), eval_mode(G):  # samples from the prior, as the sampler draws them
                out.update(health(real, G(torch.randn_like(mu)).float()))

        stepped = apply_update(terms["loss"], "G", (opt_G, opt_D), (G, D), precision, sync, skip_nonfinite,
                               look if want_stats else None)
        if skip_nonfinite:
            out["skipped"] = torch.tensor(0.0 if stepped else 1.0)
        return out
