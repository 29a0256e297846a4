"""Sample-quality metrics: those that need no network, and the Inception FID / KID papers report.

2-D mixtures use the PacGAN / VEEGAN protocol exactly: draw 2,500 samples; a sample is high quality
(HQ) when its distance to the nearest mode centre is below 3 sigma; a mode is covered when it is the
nearest mode of at least one HQ sample; reverse KL is KL(p_hat || uniform) where p_hat is the
histogram of the HQ samples' nearest modes (infinite when no sample is HQ). Beside them, the energy
distance to real samples: finite and continuous however bad the samples, so a search has something to
minimise from the first trial.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
from torch import Tensor, nn

TOY_SAMPLES = 2500  # the protocol's sample count


def mode_histogram(samples: Tensor, centers: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """(counts of HQ samples per mode (K,), HQ mask (n,)) for 2-D samples against mode centres."""
    dist = torch.cdist(samples.float(), centers.float().to(samples.device))  # (n, K)
    nearest_dist, nearest = dist.min(dim=1)
    hq = nearest_dist < 3 * sigma
    counts = torch.bincount(nearest[hq], minlength=centers.shape[0])
    return counts.cpu(), hq.cpu()


def kl_to_uniform(counts: Tensor) -> float:
    """KL(p_hat || uniform) in nats for a histogram of counts; inf when the histogram is empty."""
    total = float(counts.sum())
    if total == 0:
        return math.inf
    p = counts.double() / total
    p = p[p > 0]
    return float((p * (p * counts.numel()).log()).sum())


def energy_distance(a: Tensor, b: Tensor) -> float:
    """Energy distance 2 E|A - B| - E|A - A'| - E|B - B'| between two point sets (n, d), the within-set means
    over distinct pairs (so two samples of one distribution score about 0); 0 only for equal distributions."""
    a, b = a.double().flatten(1), b.double().flatten(1)

    def within(x: Tensor) -> float:
        return float(torch.cdist(x, x).sum()) / (len(x) * (len(x) - 1))

    return 2 * float(torch.cdist(a, b).mean()) - within(a) - within(b)


def toy_metrics(samples: Tensor, centers: Tensor, sigma: float) -> dict[str, float]:
    """Modes covered, % high-quality samples and reverse KL (PacGAN protocol) for 2-D samples."""
    counts, hq = mode_histogram(samples, centers, sigma)
    return {"modes": float((counts > 0).sum()), "hq_percent": 100.0 * float(hq.float().mean()),
            "reverse_kl": kl_to_uniform(counts)}


def gaussian_stats(a: Tensor) -> tuple[Tensor, Tensor]:
    """(mean, covariance) of a feature set (N, d), in float64."""
    a = a.double()
    return a.mean(0), torch.cov(a.T)


def frechet_from_stats(mu_a: Tensor, s_a: Tensor, mu_b: Tensor, s_b: Tensor) -> float:
    """Fréchet distance between two Gaussians: ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    mu_a, s_a, mu_b, s_b = mu_a.double(), s_a.double(), mu_b.double(), s_b.double()
    # Tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric PSD matrix
    vals, vecs = torch.linalg.eigh(s_a)
    root_a = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    middle = torch.linalg.eigvalsh(root_a @ s_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + s_a.trace() + s_b.trace() - 2 * middle)


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, d), in float64."""
    return frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b))


def knn_radii(x: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance from each row of x (N, d) to its k-th nearest other row (float64)."""
    x = x.double()
    # kthvalue k + 1: each row's nearest row is itself, at distance 0
    return torch.cat([torch.cdist(part, x).kthvalue(k + 1, dim=1).values for part in x.split(chunk)])


def prdc(real: Tensor, fake: Tensor, k: int = 3, real_radii: Tensor | None = None,
         chunk: int = 2048) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) and density and coverage (Naeem et al.
    2020) of fake features against real features, with k-nearest-neighbour balls (k = 3 by default).

    precision: share of fakes inside some real sample's ball (fidelity); recall: share of reals inside
    some fake sample's ball (diversity); density: fakes per real ball, over k (about 1 when fakes are
    spread like the reals); coverage: share of real balls holding at least one fake. real_radii: the
    reals' k-NN radii, when already computed.
    """
    real, fake = real.double(), fake.double()
    r_real = knn_radii(real, k, chunk) if real_radii is None else real_radii.double()
    r_fake = knn_radii(fake, k, chunk)
    in_real_ball = torch.zeros(len(fake), dtype=torch.bool)
    balls_hit = torch.zeros(len(fake), dtype=torch.float64)
    recalled, covered = 0, 0
    for start in range(0, len(real), chunk):
        d = torch.cdist(real[start:start + chunk], fake)  # (chunk of reals, fakes)
        inside = d < r_real[start:start + chunk, None]  # fake j in real i's ball
        in_real_ball |= inside.any(0)
        balls_hit += inside.sum(0)
        recalled += int((d < r_fake[None]).any(1).sum())
        covered += int(inside.any(1).sum())
    return {"precision": float(in_real_ball.double().mean()), "recall": recalled / len(real),
            "density": float(balls_hit.mean()) / k, "coverage": covered / len(real)}


def kid(a: Tensor, b: Tensor, subsets: int = 10, subset_size: int = 1000, seed: int = 0) -> float:
    """Kernel Inception Distance on any features: the unbiased MMD^2 with kernel (x.y / d + 1)^3,
    averaged over random subsets."""
    a, b = a.double(), b.double()
    m = min(subset_size, len(a), len(b))
    g = torch.Generator().manual_seed(seed)
    d = a.shape[1]
    total = 0.0
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=g)[:m]]
        y = b[torch.randperm(len(b), generator=g)[:m]]
        k_xx, k_yy, k_xy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off = 1 - torch.eye(m, dtype=torch.float64)
        total += float((k_xx * off).sum() / (m * (m - 1)) + (k_yy * off).sum() / (m * (m - 1)) - 2 * k_xy.mean())
    return total / subsets


def class_metrics(probs: Tensor, confident: float = 0.9) -> dict[str, float]:
    """From classifier probabilities (N, classes): classes covered (predicted at least once), KL of the
    predicted-class histogram to uniform, the mean top probability, and the share of samples whose top
    probability is over `confident` (read as one class without doubt)."""
    top = probs.max(1).values
    counts = torch.bincount(probs.argmax(1), minlength=probs.shape[1])
    return {"classes": float((counts > 0).sum()), "class_kl": kl_to_uniform(counts),
            "confidence": float(top.mean()), "confident": float((top > confident).double().mean())}


def mean_distance(x: Tensor) -> float:
    """Mean pairwise Euclidean distance between the rows of x (N, d); nan below 2 rows."""
    return float(torch.pdist(x.double()).mean()) if len(x) > 1 else math.nan


class MetricUnavailable(RuntimeError):
    """A metric that cannot run here (a missing package or weights); the message says what is missing."""


INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's FID Inception-v3


@functools.lru_cache(maxsize=1)  # `ganrun eval` checks a weights file before any work, then scores with it
def inception_network(weights: str = "") -> nn.Module:
    """The FID Inception-v3 (torchmetrics' wrapper of torch-fidelity's port): uint8 images of any size in,
    2048-d pool features out. Its weights are downloaded on first use, or read from a local file `weights`
    (a FeatureError, exit 2, naming the file when it is missing or is not those weights)."""
    import socket

    from ganrun.data.base import first_line
    from ganrun.errors import FeatureError

    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError:
        raise MetricUnavailable("Inception FID/KID need torchmetrics and torch-fidelity: "
                                "pip install 'ganrun[inception]'") from None
    if weights:
        if not Path(weights).is_file():
            raise FeatureError(f"inception_weights={weights}: no such file (torch-fidelity's {INCEPTION_FILE}, "
                               "or leave inception_weights out to download it)")
        try:
            return NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=weights)
        except Exception as e:
            raise FeatureError(f"inception_weights={weights}: not Inception-v3 FID weights ({first_line(e)[:120]}); "
                               f"use torch-fidelity's {INCEPTION_FILE}") from None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # a machine without network fails fast instead of hanging
    try:
        return NoTrainInceptionV3("inception-v3-compat", ["2048"])
    except Exception as e:  # no network: say so in one line
        raise MetricUnavailable(f"Inception weights unavailable ({first_line(e)[:120]}); run once with internet, or "
                                f"pass inception_weights=PATH (torch-fidelity's {INCEPTION_FILE})") from None
    finally:
        socket.setdefaulttimeout(previous)


@torch.no_grad()
def inception_scores(fake: Tensor, real: Tensor, weights: str = "", batch: int = 100) -> dict[str, float]:
    """Inception FID and KID of fake vs real images, both float (N, C, H, W) in [0, 1]: the numbers papers
    report. Images are quantised to uint8 and resized inside the network as torch-fidelity does; FID and
    KID are this module's frechet_distance and kid on the 2048-d features."""
    net = inception_network(weights)

    def embed(images: Tensor) -> Tensor:
        chunks = []
        for chunk in images.split(batch):
            rgb = chunk.expand(-1, 3, -1, -1) if chunk.shape[1] == 1 else chunk
            chunks.append(net(rgb.mul(255).round().clamp(0, 255).to(torch.uint8)).double())
        return torch.cat(chunks)

    f_fake, f_real = embed(fake), embed(real)
    return {"inception_fid": frechet_distance(f_fake, f_real), "inception_kid": kid(f_fake, f_real)}
