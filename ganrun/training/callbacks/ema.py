"""train.ema: an exponential moving average of G's weights, which samples and metrics draw from."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from ganrun.models.common import noise
from ganrun.training.callbacks.base import Callback, Run


def ema_decay(decay: float, rampup: float, step: int) -> float:
    """The EMA decay at G step `step` (1-based): `decay`, or with a warm-up (StyleGAN2's ema_rampup) the decay
    whose half-life is min(decay's half-life, rampup * step) steps, so the average's horizon grows with the
    run and G_ema follows G closely early on (a short run's samples show what G has learned)."""
    if not rampup or not 0.0 < decay < 1.0:
        return decay
    half_life = min(math.log(0.5) / math.log(decay), rampup * step)
    return 0.5 ** (1.0 / half_life)


class EMA(Callback):
    """G_ema, an exponential moving average of G's weights, updated after every G step, with the decay warming
    up over the run (ema_decay); it becomes the run's sampler, which previews, metrics and checkpoints read.

    Averaging damps the oscillation of adversarial training, so G_ema's samples are usually cleaner
    than G's. BatchNorm's running statistics belong to G's weights, not to the averaged ones, so before
    anything reads G_ema they are recomputed: G_ema runs in train mode on `BN_BATCHES` batches of fixed
    noise (every class in turn for a conditional G), averaging the batch statistics. The training RNG is
    untouched.
    """

    BN_BATCHES = 16

    def __init__(self, decay: float = 0.0, rampup: float = 0.05):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"train.ema={decay}: must be in [0, 1) (0 turns the EMA generator off; 0.999 is usual)")
        if rampup < 0:
            raise ValueError(f"train.ema_rampup={rampup}: must be >= 0 (0 turns the warm-up off; 0.05 is usual)")
        self.decay, self.rampup = decay, rampup
        self.fresh_at = -1  # the step whose weights the BatchNorm statistics were last computed for

    @property
    def active(self) -> bool:
        return self.decay > 0

    def setup(self, run: Run) -> None:
        super().setup(run)
        self.G = run.exp.G
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.norms = [m for m in self.G_ema.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        run.sampler = self.G_ema

    @torch.no_grad()
    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        weight = 1.0 - ema_decay(self.decay, self.rampup, step)
        torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), weight)  # one fused kernel
        if any(c.reads_sampler(step) for c in self.run.callbacks):
            self.recompute_norms(step)

    def on_end(self, step: int) -> None:
        self.recompute_norms(step)  # an interrupted run's last.pt: statistics for its weights too

    @torch.no_grad()
    def recompute_norms(self, step: int) -> None:
        """BatchNorm statistics of G_ema's own weights: the average over BN_BATCHES train-mode batches."""
        if not self.norms or self.fresh_at == step:
            return
        G, device = self.G_ema, next(self.G_ema.parameters()).device
        saved = [(m.momentum, m.training) for m in self.norms]
        for m in self.norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches below
            m.train()
        gen = torch.Generator().manual_seed(12345)
        for _ in range(self.BN_BATCHES):
            z = noise(G, self.run.exp.batch_size, generator=gen).to(device)
            if G.n_classes:
                G(z, (torch.arange(len(z)) % G.n_classes).to(device))
            else:
                G(z)
        for m, (momentum, training) in zip(self.norms, saved):
            m.momentum = momentum
            m.train(training)
        self.fresh_at = step

    def save(self, ckpt: dict[str, Any]) -> None:
        ckpt["G_ema"] = self.G_ema.state_dict()

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.G_ema.load_state_dict(ckpt.get("G_ema", ckpt["G"]))
