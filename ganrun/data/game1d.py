"""The 1-D game of the original GAN paper's figure 1 (Goodfellow et al. 2014), drawn from a live G and D.

Top panel, over one x axis: the data density p_data (black, dotted), the generator's density p_g
(green, a Gaussian kernel density estimate of G(z)) and D(x) (blue). Bottom panel: the mapping
z -> x, a line from each of a set of equally likely z (lower axis) to G(z) (upper axis); where the
lines crowd together, G puts more mass. With D optimal, D*(x) = p_data / (p_data + p_g) (see
`optimal_d`); at the game's optimum p_g = p_data, D* = 1/2 everywhere and V(D*, G) = -log 4.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import ganrun.data.pictures as images
from ganrun.models.common import eval_mode, noise

KDE_SAMPLES = 10_000  # G(z) draws behind the density estimate
GRID = 400  # x positions at which the curves are drawn
MAP_LINES = 25  # z -> x lines in the lower panel


def kde(samples: Tensor, x: Tensor) -> Tensor:
    """Gaussian kernel density estimate of 1-D `samples` (n,) at points x (m,), Silverman's bandwidth."""
    samples, x = samples.double().flatten(), x.double().flatten()
    n = samples.numel()
    spread = min(float(samples.std()), float(samples.quantile(0.75) - samples.quantile(0.25)) / 1.34)
    h = max(0.9 * max(spread, 1e-3) * n ** -0.2, 1e-3)  # a collapsed G still gets a finite peak
    u = (x[:, None] - samples[None, :]) / h  # (m, n)
    return torch.exp(-0.5 * u * u).sum(dim=1) / (n * h * math.sqrt(2 * math.pi))


def optimal_d(p_data: Tensor, p_g: Tensor) -> Tensor:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)), the best D for a fixed G (0.5 where both vanish)."""
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp(min=1e-300), torch.full_like(total, 0.5))


def jensen_shannon(p: Tensor, q: Tensor, dx: float) -> float:
    """JSD(p || q) in nats of two densities tabulated on an even grid of step dx."""
    m = 0.5 * (p + q)

    def kl(a: Tensor) -> Tensor:
        safe = a > 0
        return torch.where(safe, a * (a.clamp(min=1e-300) / m.clamp(min=1e-300)).log(), torch.zeros_like(a))

    return float(0.5 * (kl(p) + kl(q)).sum() * dx)


@torch.no_grad()
def curves(G: nn.Module, D: nn.Module, data: Any, probability: bool = True, seed: int = 0,
           n: int = KDE_SAMPLES) -> dict[str, np.ndarray]:
    """Everything the figure draws, as arrays: x, p_data, p_g, d (D(x), or the critic scaled to
    [0, 1] when D's output is not a probability), and the z -> G(z) pairs of the mapping."""
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    with eval_mode(G), eval_mode(D):
        fake = G(noise(G, n, generator=gen).to(device)).float().flatten().cpu()
        centers = data.centers.flatten()
        lo = min(float(centers.min()) - 4 * data.sigma, float(fake.quantile(0.005)) - data.sigma)
        hi = max(float(centers.max()) + 4 * data.sigma, float(fake.quantile(0.995)) + data.sigma)
        # the mapping: equally likely z values (quantiles of G's prior), so line density shows mass
        q = (torch.arange(MAP_LINES, dtype=torch.float64) + 0.5) / MAP_LINES
        z = (q * 2 - 1) if getattr(G, "latent", "gaussian") == "uniform" else torch.special.ndtri(q)
        z = z.float().view(-1, 1).expand(-1, G.latent_dim).contiguous()  # the same value in every latent dim
        mapped = G(z.to(device)).float().flatten().cpu()
        lo, hi = min(lo, float(z.min()), float(mapped.min())), max(hi, float(z.max()), float(mapped.max()))
        x = torch.linspace(lo, hi, GRID)
        logits = D(x.view(-1, 1).to(device)).float().flatten().cpu()
    if probability:
        d = torch.sigmoid(logits)
    else:  # a critic's scale is arbitrary: show its shape in [0, 1]
        d = (logits - logits.min()) / (logits.max() - logits.min()).clamp(min=1e-12)
    return {"x": x.numpy(), "p_data": data.density(x.view(-1, 1)).numpy(), "p_g": kde(fake, x).numpy(),
            "d": d.numpy(), "z": z[:, 0].numpy(), "g_z": mapped.numpy()}


def figure(G: nn.Module, D: nn.Module, data: Any, probability: bool = True, title: str = "",
           seed: int = 0) -> Tensor:
    """The figure as a (3, H, W) image in [0, 1] (for PNG files and TensorBoard)."""
    c = curves(G, D, data, probability, seed)
    fig, (top, bottom) = images.pyplot().subplots(2, 1, figsize=(6, 4.2), dpi=80, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    peak = max(float(c["p_data"].max()), float(c["p_g"].max()), 1e-12)
    scale = 1.0 / peak  # densities scaled to a peak of 1, so D(x) in [0, 1] shares the axis
    top.plot(c["x"], c["p_data"] * scale, "k:", lw=2, label="data density")
    top.plot(c["x"], c["p_g"] * scale, color="tab:green", lw=1.5, label="G's density")
    top.plot(c["x"], c["d"], color="tab:blue", lw=1.5, label="D(x)" if probability else "critic (rescaled)")
    top.set_ylim(-0.02, 1.08)
    top.legend(loc="upper left", fontsize=7, frameon=False)
    top.set_yticks([0, 0.5, 1])
    if title:
        top.set_title(title, fontsize=9)
    for z, gz in zip(c["z"], c["g_z"]):
        bottom.annotate("", xy=(gz, 1.0), xytext=(z, 0.0),
                        arrowprops={"arrowstyle": "->", "color": "0.35", "lw": 0.7})
    bottom.axhline(0.0, color="k", lw=0.8)
    bottom.axhline(1.0, color="k", lw=0.8)
    bottom.set_ylim(-0.15, 1.15)
    bottom.set_yticks([0, 1])
    bottom.set_yticklabels(["z", "x"])
    fig.tight_layout()
    return images.render(fig)
