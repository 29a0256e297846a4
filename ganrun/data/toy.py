"""The 1-D and 2-D toy mixtures (the GAN paper's 1-D game, the 8-Gaussian ring, the 5x5 grid), sampled
afresh for every batch."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from torch import Tensor

import ganrun.data.pictures as pictures
from ganrun.data.base import describe
from ganrun.errors import DataError  # noqa: F401  (re-exported)

PICTURE_POINTS = 2500  # points in a scatter plot (the 2-D protocol's sample count)


class Mixture:
    """An equal-weight mixture of isotropic Gaussians with the given centres (K, d) and sigma."""

    pixels = False
    pseudo = False

    def __init__(self, centers: Tensor, sigma: float, name: str):
        if sigma <= 0:
            raise DataError(f"dataset.sigma={sigma}: must be > 0")
        self.centers = centers.float()
        self.sigma = sigma
        self.name = name
        self.shape = (self.centers.shape[1],)
        self.labels, self.n_classes, self.digits, self.make_split, self.held_out = None, 0, None, None, None
        self.skipped: list[str] = []

    @property
    def modes(self) -> Tensor:
        """The mode centres (K, d): what the 2-D protocol's metrics measure against."""
        return self.centers

    def preview_size(self, n: int) -> int:
        return PICTURE_POINTS

    def picture(self, samples: Tensor, labels: Optional[Tensor] = None, per_row: int = 0, title: str = "",
                game: Optional[Callable[[], tuple[Any, Any, bool]]] = None) -> Tensor:
        """A scatter plot of the samples over as many real points and the mode centres; for 1-D data given
        `game` (G, D, whether D's output is a probability), the GAN paper's figure of the game (ganrun.data.game1d)."""
        if game is not None and self.shape == (1,):
            import ganrun.data.game1d as game1d

            G, D, probability = game()
            return game1d.figure(G, D, self, probability, title)
        reference = self.sample(len(samples), torch.Generator().manual_seed(0))
        return pictures.scatter(samples, reference, self.centers, title)

    def to_array(self, samples: Tensor) -> Any:
        return samples.detach().float().cpu().numpy()

    def draw(self, n: int, seed: int) -> tuple[Tensor, None]:
        """n points drawn with `seed` (a mixture stores none: it is sampled afresh)."""
        return self.sample(n, torch.Generator().manual_seed(seed)), None

    def all_samples(self) -> Tensor:
        raise TypeError(f"{self.name} is sampled afresh and stores no samples; draw some with draw(n, seed)")

    def describe(self) -> dict[str, Any]:
        return describe(self)

    def __len__(self) -> int:
        raise TypeError(f"{self.name} is sampled afresh and has no length")

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
        """n points (n, d) drawn from the mixture."""
        centers = self.centers.to(device)
        idx = torch.randint(len(centers), (n,), generator=generator, device=device)
        return centers[idx] + self.sigma * torch.randn(n, *self.shape, generator=generator, device=device)

    def density(self, x: Tensor) -> Tensor:
        """p_data(x) for points x (n, d): the mean of the components' normal densities."""
        d = self.shape[0]
        sq = torch.cdist(x.double(), self.centers.double().to(x.device)).pow(2)  # (n, K)
        log_norm = -0.5 * d * math.log(2 * math.pi * self.sigma ** 2)
        return (log_norm - sq / (2 * self.sigma ** 2)).exp().mean(dim=1)

    def batches(self, batch_size: int, device: torch.device, seed: int = 0, start: int = 0,
                rank: int = 0, world: int = 1, labels: bool = False) -> Iterator[Tensor]:
        """Endless batches sampled on the device; global batch j depends only on (seed, j), so
        resuming is exact; rank r of `world` gets j = k * world + r. A mixture has no labels."""
        if labels:
            raise DataError(f"{self.name} has no class labels; model.conditional=true needs a labelled dataset")
        g = torch.Generator(device=device)
        k = start
        while True:
            g.manual_seed(seed * 1_000_003 + k * world + rank)
            yield self.sample(batch_size, g, device)
            k += 1


def gauss1d(means: Sequence[float] = (2.0,), sigma: float = 0.5) -> Mixture:
    """1-D data for the original GAN paper's figure: one Gaussian N(mean, sigma^2), or an equal-weight
    mixture when several means are given (default: a single Gaussian at 2)."""
    if not len(means):
        raise DataError("dataset.means=[]: give at least one mean, e.g. dataset.means=[2.0]")
    return Mixture(torch.tensor(list(means), dtype=torch.float64).view(-1, 1), sigma, "gauss1d")


def ring(n_modes: int = 8, radius: float = 1.0, sigma: float = 0.01) -> Mixture:
    """n_modes Gaussians evenly spaced on a circle (the 8-mode ring of the Unrolled GAN / PacGAN papers)."""
    if n_modes < 1:
        raise DataError(f"dataset.n_modes={n_modes}: must be >= 1")
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    centers = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return Mixture(centers, sigma, "ring")


def grid(side: int = 5, spacing: float = 2.0, sigma: float = 0.05) -> Mixture:
    """side x side Gaussians on a centred square grid; the defaults give centres at {-4,-2,0,2,4}^2."""
    if side < 1:
        raise DataError(f"dataset.side={side}: must be >= 1")
    ticks = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(ticks, ticks, indexing="ij")
    return Mixture(torch.stack([xs.flatten(), ys.flatten()], dim=1), sigma, "grid")


# ---------------------------------------------------------------- Stacked MNIST (1,000 modes)

