"""Pieces shared by the architectures: normalisation choice, spectral norm, DCGAN init."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

Norm = Literal["batch", "layer", "none"]


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run a block with `module` in eval mode (BatchNorm running statistics, no dropout), then restore."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def d_norm_layer(kind: Norm, channels: int, conv: bool) -> nn.Module:
    """The normalisation after a hidden D layer: batch, layer (GroupNorm(1, C) for convs) or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if conv else nn.LayerNorm(channels)
    return nn.Identity()


def maybe_sn(layer: nn.Module, on: bool) -> nn.Module:
    """Wrap a conv/linear layer in spectral normalisation when `on`."""
    return nn.utils.parametrizations.spectral_norm(layer) if on else layer


def dcgan_init(module: nn.Module) -> None:
    """DCGAN init: conv/linear weights ~ N(0, 0.02); norm scales ~ N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # under spectral norm `weight` is computed; initialise the stored original instead
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Packed(nn.Module):
    """PacGAN packing: D judges m samples jointly, (N, C, ...) -> (N/m, m*C, ...), one logit per pack.

    Seeing several samples at once lets D notice when they are too alike, which penalises collapse.
    """

    def __init__(self, D: nn.Module, m: int):
        super().__init__()
        self.D, self.m = D, m

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] % self.m:
            raise ValueError(f"batch of {x.shape[0]} does not split into packs of model.pack={self.m}")
        return self.D(x.reshape(x.shape[0] // self.m, self.m * x.shape[1], *x.shape[2:]))


class MinibatchStd(nn.Module):
    """Appends one feature: the mean over features of the batch standard deviation (ProGAN's trick),
    so D can tell a batch of near-identical samples from a varied one."""

    def forward(self, x: Tensor) -> Tensor:
        std = x.float().std(dim=0, unbiased=False).mean().to(x.dtype)
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)
