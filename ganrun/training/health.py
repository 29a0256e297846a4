"""Training-health signals measured on logging steps, and the monitor that warns when one trips."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

log = logging.getLogger(__name__)


def health(real: Tensor, fake: Tensor, real_logits: Tensor | None = None,
           labels: Tensor | None = None) -> dict[str, Tensor]:
    """Training-health signals on one batch (logging steps only).

    health/diversity: mean pairwise distance between G's samples over the same for real data; near 1
    when G is as varied as the data, near 0 when many z map to one output (mode collapse). With labels
    (a conditional model: fakes drawn for the real batch's classes) only pairs of one class count, so
    a G that draws one image per class reads near 0 too.
    health/d_real_sign: E[sign(D(x))], the overfitting signal adaptive augmentation watches; near 1
    when D calls every real sample real with a margin (only when real_logits are given).
    """
    with torch.no_grad():
        same = None
        if labels is not None:
            same = labels[:, None] == labels[None, :]
            same.fill_diagonal_(False)
            same = same if bool(same.any()) else None  # no two of one class: all pairs
        spread_fake, spread_real = _spread(fake, same), _spread(real, same)
        out = {"health/diversity": spread_fake / spread_real.clamp(min=1e-12)}
        if real_logits is not None:
            out["health/d_real_sign"] = real_logits.sign().mean()
        return out


def _spread(x: Tensor, pairs: Tensor | None) -> Tensor:
    """Mean distance between the rows of x over all pairs, or over the pairs marked in `pairs` (N, N)."""
    flat = x.flatten(1).float()
    return torch.pdist(flat).mean() if pairs is None else torch.cdist(flat, flat)[pairs].mean()


class Monitor:
    """Warns on the terminal (once per kind) when a health signal trips, naming the usual remedies.
    Silent for the first WARMUP steps: a freshly initialised G draws near-identical samples and D
    separates them easily, which is no sign of a problem yet."""

    WARMUP = 100

    def __init__(self) -> None:
        self.warned: set[str] = set()

    def __call__(self, step: int, stats: dict[str, float]) -> list[str]:
        if step < self.WARMUP:
            return []
        found = []
        if stats.get("health/diversity", 1.0) < 0.25:
            found.append(("collapse", f"step {step}: possible mode collapse: G's samples are "
                          f"{stats['health/diversity']:.2f}x as spread out as the data; try loss=wgan-gp, "
                          f"model.spectral_norm=true, a lower optimizer.lr_g, or train.n_critic > 1"))
        if stats.get("D(G(z))", 1.0) < 0.02 and stats.get("D(x)", 0.0) > 0.98:
            found.append(("d_wins", f"step {step}: D wins outright (D(G(z)) = {stats['D(G(z))']:.3f}); try "
                          f"loss.real_label=0.9, loss.flip_prob=0.05, model.d_dropout=0.3, a lower "
                          f"optimizer.lr_d, or loss=wgan-gp"))
        messages = []
        for kind, message in found:
            if kind not in self.warned:
                self.warned.add(kind)
                log.warning(message)
                messages.append(message)
        return messages
