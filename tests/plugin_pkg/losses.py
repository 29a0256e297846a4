"""A loss written outside ganrun: the least-squares pair with a margin, to prove a config can name it."""

from __future__ import annotations

from torch import Tensor

from ganrun.training.losses import Loss


class MarginLeastSquares(Loss):
    """D pushes real logits to +margin and fake ones to -margin; G pulls its fakes to +margin."""

    def __init__(self, margin: float = 1.0):
        self.margin = margin

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return 0.5 * ((real_logits - self.margin).pow(2).mean() + (fake_logits + self.margin).pow(2).mean())

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return 0.5 * (fake_logits - self.margin).pow(2).mean()
