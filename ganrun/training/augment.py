"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for data-efficient GAN training.

D sees every image, real or fake, through the same random, differentiable transforms, so it cannot
memorise a small training set and G still gets gradients through them. Each transform draws its
parameters per sample. Images are in [-1, 1], shape (N, C, H, W). With adaptive augmentation (ADA,
Karras et al. 2020; callbacks.AdaptiveAugment) each transform is applied to each image with probability p,
which the callback moves so that D does not overfit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def color(x: Tensor) -> Tensor:
    """Random brightness (+U[-0.5, 0.5]), saturation (x U[0, 2]) and contrast (x U[0.5, 1.5]) per sample."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    if x.shape[1] > 1:  # saturation only means something with several channels
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ratio * size pixels in x and y, filling with zeros (mid-grey)."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy  # source row of each output row
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx
    valid = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)  # (n, 1, h, w)
    flat = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    shifted = x.flatten(2).gather(2, flat).view_as(x)
    return shifted * valid


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero (mid-grey) one square of ratio * size per image at a random place."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy).abs() < (ch + 1) // 2) & ((xs - cx).abs() < (cw + 1) // 2)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def flip(x: Tensor) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    mirror = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(mirror, x.flip(3), x)


POLICIES = {"color": color, "translation": translation, "cutout": cutout, "flip": flip}  # names: config.AUGMENTATIONS


class Augmented(nn.Module):
    """D behind DiffAugment: forward(x) = D(augment(x)) with the listed transforms, in order. `p` None:
    every transform on every image; a 0-d tensor p: each transform on each image with probability p (ADA).
    `idle`: set by ADA when its last read of p found 0, so no transform is computed for nothing."""

    def __init__(self, D: nn.Module, policy: list[str]):
        super().__init__()
        unknown = [p for p in policy if p not in POLICIES]
        if unknown:
            raise ValueError(f"train.augment: unknown transform {unknown[0]!r}; use any of {', '.join(POLICIES)}")
        self.D = D
        self.policy = list(policy)
        self.p: Tensor | None = None
        self.idle = False

    def forward(self, x: Tensor, *labels: Tensor) -> Tensor:
        if self.idle:
            return self.D(x, *labels)
        for name in self.policy:
            if self.p is None:
                x = POLICIES[name](x)
            else:
                chosen = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.p
                x = torch.where(chosen, POLICIES[name](x), x)
        return self.D(x, *labels)


def unaugmented(D: nn.Module) -> nn.Module:
    """D itself, without the DiffAugment wrapper when it has one (to score clean samples)."""
    return D.D if isinstance(D, Augmented) else D
