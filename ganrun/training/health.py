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
    """Warns on the terminal when a health signal has tripped for LASTS steps in a row, naming the usual
    remedies, and says so when it clears; the kind is watched again after that. Early in a run G's samples
    are often alike for a while and then spread out (the MNIST sample's default run read 0.22-0.25 at steps
    50-200, the labelled emoji's 0.08-0.23 until step 500 or later), and D often wins the first steps: a
    signal that passes within LASTS steps is no sign of a problem."""

    LASTS = 400
    COLLAPSED, SPREAD = 0.25, 0.5  # health/diversity: tripped below COLLAPSED, all clear at SPREAD or above
    D_WINS, D_FOOLED = 0.02, 0.1  # D(G(z)): tripped below D_WINS (with D(x) above 0.98), all clear at D_FOOLED

    def __init__(self) -> None:
        self.tripped: dict[str, int] = {}  # kind -> the first step of its current trip
        self.warned: set[str] = set()  # kinds warned of and not cleared since

    def checks(self, step: int, stats: dict[str, float]) -> dict[str, tuple[bool, bool, str, str]]:
        """kind -> (tripped, cleared, the warning, the all-clear) for the signals this step has; `{since}` in
        the texts is the step the trip began."""
        out = {}
        if "health/diversity" in stats:
            d = stats["health/diversity"]
            out["collapse"] = (d < self.COLLAPSED, d >= self.SPREAD,
                               f"step {step}: possible mode collapse: G's samples have been under {self.COLLAPSED}x "
                               f"as spread out as the data since step {{since}} ({d:.2f}x now); try loss=wgan-gp, "
                               f"model.spectral_norm=true, a lower optimizer.lr_g, or train.n_critic > 1",
                               f"step {step}: G's samples are spread out again ({d:.2f}x the data's): the possible "
                               f"mode collapse warned of has passed")
        if "D(G(z))" in stats and "D(x)" in stats:
            fooled = stats["D(G(z))"]
            out["d_wins"] = (fooled < self.D_WINS and stats["D(x)"] > 0.98, fooled >= self.D_FOOLED,
                             f"step {step}: D has won outright since step {{since}} (D(G(z)) = {fooled:.3f}); try "
                             f"loss.real_label=0.9, loss.flip_prob=0.05, model.d_dropout=0.3, a lower "
                             f"optimizer.lr_d, or loss=wgan-gp",
                             f"step {step}: G fools D again (D(G(z)) = {fooled:.3f}): D's win warned of has passed")
        return out

    def __call__(self, step: int, stats: dict[str, float]) -> list[str]:
        """The warnings and all-clears of this step (also logged)."""
        messages = []
        for kind, (tripped, cleared, warning, all_clear) in self.checks(step, stats).items():
            since = self.tripped.setdefault(kind, step) if tripped else self.tripped.pop(kind, None)
            if tripped and kind not in self.warned and step - since >= self.LASTS:
                self.warned.add(kind)
                messages.append(warning.format(since=since))
                log.warning(messages[-1])
            elif cleared and kind in self.warned:
                self.warned.discard(kind)
                messages.append(all_clear)
                log.info(all_clear)
        return messages
