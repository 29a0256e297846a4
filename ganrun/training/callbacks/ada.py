"""train.ada_target: adaptive discriminator augmentation (Karras et al. 2020)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ganrun.errors import CheckpointError, ConfigError
from ganrun.training.augment import Augmented
from ganrun.training.callbacks.base import Callback, Run


class AdaptiveAugment(Callback):
    """The probability p of each train.augment transform starts at 0; every INTERVAL steps it moves by
    sign(r - target) * (images seen in the interval) / (kimg * 1000), where r = E[sign D(real)] over
    those steps (near 1 when D calls every real image real with a margin: overfitting), clamped to
    [0, 1]. Kept on the device; read on the host once per interval, so that while p is 0 D skips the
    transforms (they would all be thrown away). Logged as ada/p, saved in checkpoints and restored."""

    INTERVAL = 4

    def __init__(self, target: float = 0.0, kimg: int = 100):
        if not 0.0 <= target < 1.0 or kimg < 1:
            raise ValueError(f"train.ada_target={target}, train.ada_kimg={kimg}: the target is in [0, 1) "
                             f"(0 turns ADA off; 0.6 is usual) and ada_kimg >= 1")
        self.target, self.kimg = target, kimg
        self.signs: list[Tensor] = []

    @property
    def active(self) -> bool:
        return self.target > 0

    def setup(self, run: Run) -> None:
        super().setup(run)
        exp = run.exp
        if not isinstance(exp.D, Augmented):
            raise ConfigError(f"train.ada_target={self.target} adapts the probability of the train.augment "
                              f"transforms; name them, e.g. train.augment=[flip,translation,color,cutout]")
        self.D = exp.D
        self.step_size = exp.batch_size * exp.n_critic * self.INTERVAL / (self.kimg * 1000)
        self.D.p = torch.zeros((), device=next(self.D.parameters()).device)
        self.D.idle = True

    @torch.no_grad()
    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        self.signs.append(out["health/d_real_sign"])
        if len(self.signs) == self.INTERVAL:
            r = torch.stack(self.signs).mean()
            self.D.p.add_(torch.sign(r - self.target) * self.step_size).clamp_(0.0, 1.0)  # in place: one tensor
            self.D.idle = bool(self.D.p == 0)  # the one host read per interval
            self.signs = []
        out["ada/p"] = self.D.p.clone()

    def save(self, ckpt: dict[str, Any]) -> None:
        ckpt["ada"] = {"p": self.D.p.clone(), "signs": [s.clone() for s in self.signs]}

    def restore(self, ckpt: dict[str, Any]) -> None:
        if "ada" not in ckpt:
            raise CheckpointError("resume: train.ada_target is set but the checkpoint has no ADA state; "
                                  "resume with the run's own train.ada_target")
        self.D.p.copy_(ckpt["ada"]["p"])
        self.D.idle = bool(self.D.p == 0)
        self.signs = [s.to(self.D.p.device) for s in ckpt["ada"]["signs"]]
