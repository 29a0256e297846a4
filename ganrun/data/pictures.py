"""Writing what G makes: image grids and 2-D scatter plots, as PNG files and TensorBoard images."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no screen needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def render(fig: Any) -> Tensor:
    """A matplotlib figure as a (3, H, W) tensor in [0, 1], for PNG files and TensorBoard; closes it."""
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    pyplot().close(fig)
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255)


def to_unit(images: Tensor) -> Tensor:
    """G's [-1, 1] output -> float [0, 1]."""
    return images.detach().float().add(1).div_(2).clamp_(0, 1)


def grid(images: Tensor, nrow: int = 0) -> Tensor:
    """A (C, H, W) grid in [0, 1] of G's [-1, 1] images, nrow per row (0: a near-square grid)."""
    from torchvision.utils import make_grid

    nrow = nrow or math.ceil(math.sqrt(images.shape[0]))
    return make_grid(to_unit(images).cpu(), nrow=nrow, padding=2, pad_value=0.5)


def to_uint8(image: Tensor) -> np.ndarray:
    """A (C, H, W) [0, 1] tensor as the 8-bit (H, W, C) array image files take ((H, W) for one channel)."""
    arr = image.mul(255).round_().to(torch.uint8).permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[2] == 1 else arr


def save_png(image: Tensor, path: str | Path) -> None:
    """Save a (C, H, W) [0, 1] tensor as an 8-bit PNG."""
    from PIL import Image

    Image.fromarray(to_uint8(image)).save(path)


def scatter(points: Tensor, reference: Tensor | None = None, centers: Tensor | None = None,
            title: str = "") -> Tensor:
    """Render G's 2-D samples (green) over real samples (grey) and mode centres (black x) as (3, H, W) in [0, 1]."""
    plt = pyplot()
    pts = points.detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    if reference is not None:
        ref = reference.float().cpu().numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="0.75", label="data")
    ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:green", alpha=0.6, label="G(z)")
    if centers is not None:
        c = centers.float().cpu().numpy()
        ax.scatter(c[:, 0], c[:, 1], s=30, c="k", marker="x", label="modes")
        span = np.abs(c).max() * 1.5 + 0.5
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return render(fig)


def class_rows(n_classes: int, n: int, classes: list[int] | None = None) -> tuple[Tensor | None, int]:
    """Labels of n samples for a grid with one class per row, and the row length: `classes` (default: all,
    or 10 spread over them when there are more than 10) in equal blocks (sizes differ by at most one, so
    exactly n samples), each block one row of ceil(n / rows) cells (class_grid leaves the rest blank), or,
    for fewer classes than a near-square grid has rows, rows as long as that grid's, each class's block on
    rows of its own (64 samples of one class: 8 rows of 8, not one row of 64). (None, 0) for an
    unconditional G."""
    if not n_classes:
        return None, 0
    if classes is None:
        classes = (list(range(n_classes)) if n_classes <= 10
                   else torch.linspace(0, n_classes - 1, 10).round().long().tolist())
    rows = min(len(classes), n)
    return torch.tensor(classes[:rows])[torch.arange(n) * rows // n], min(math.ceil(n / rows), math.ceil(math.sqrt(n)))


def class_grid(images: Tensor, labels: Tensor, per_row: int) -> Tensor:
    """grid() with each run of equal labels on a row of its own, padded to per_row with blank cells."""
    cells, blank = [], torch.zeros_like(images[:1])  # 0 in [-1, 1]: grey like the padding
    for block in torch.split(images, torch.unique_consecutive(labels, return_counts=True)[1].tolist()):
        for start in range(0, len(block), per_row):  # a block longer than a row wraps
            part = block[start:start + per_row]
            cells += [part, blank.expand(per_row - len(part), *part.shape[1:])]
    return grid(torch.cat(cells), per_row)
