"""Self-conditioning: train a conditional GAN on pseudo-classes found by clustering the training set.

A conditional GAN learns far better than an unconditional one at the same compute (on MNIST's labels:
FD 10.7 against 130, docs/results.md), because each class is a simpler, nearly unimodal target and
D's verdict on a class's samples cannot be met by drawing another class. Unlabelled data has no
classes, but k-means of its images gives a partition of the same kind (the idea of Liu et al.,
"Diverse image generation via self-conditioned GANs", CVPR 2020, and of Sage et al.'s clustered GANs,
2018; here the clusters are found once, in pixel space, before training).

The clusters are *balanced*: none holds more than ceil(N / K) images, and on real sets nearly all
hold that many (85-100 of 3,781 emoji in 38). The data distribution is then close to the equal-weight
mixture of its clusters, p(x) = mean_k p(x | k), so a conditional G drawing the K classes in turn (as
every sampler here does) draws from about p(x), with no class prior to estimate or store. On the 2-D
mixtures (sampled afresh each batch) a point takes its nearest centre's class, the centres fitted to
20,000 points (balanced k-means, then plain Lloyd steps); the classes are then equally likely only when
the clusters are the mixture's modes (K = 25 on the grid).
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ganrun.errors import ConfigError

log = logging.getLogger(__name__)

POOL = 16  # images are average-pooled to at most POOL x POOL pixels before clustering
DIMS = 32  # ... and projected on their DIMS leading principal components
FIT_POINTS = 20_000  # points drawn from a 2-D mixture to fit the centres
ITERATIONS = 15


def balanced_assign(cost: Tensor) -> Tensor:
    """Each row of cost (N, K) to a column, with at most ceil(N / K) rows per column (so a column may fall
    short: 85-100 rows on 3,781 emoji in 38 columns; exactly N // K or N // K + 1 each scored worse, see
    docs/results.md): every unassigned row proposes to its cheapest column with room; a column short of
    room keeps its cheapest proposers. Each round fills a column or places every row, so it ends within K
    rounds."""
    n, k = cost.shape
    room = torch.full((k,), -(-n // k), dtype=torch.long)
    assign = torch.full((n,), -1, dtype=torch.long)
    todo = torch.arange(n)
    while len(todo):
        c = cost[todo].masked_fill((room == 0)[None, :], float("inf"))
        best, choice = c.min(dim=1)
        order = torch.argsort(best, stable=True)
        order = order[torch.argsort(choice[order], stable=True)]  # by column, cheapest first within one
        col = choice[order]
        counts = torch.bincount(col, minlength=k)
        rank = torch.arange(len(order)) - (torch.cumsum(counts, 0) - counts)[col]
        ok = rank < room[col]
        assign[todo[order[ok]]] = col[ok]
        room -= torch.bincount(col[ok], minlength=k)
        todo = todo[order[~ok]]
    return assign


def kmeans_pp(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k initial centres by k-means++ (each next centre drawn with probability ~ squared distance)."""
    centers = [x[torch.randint(len(x), (1,), generator=generator)]]
    d2 = torch.cdist(x, centers[0]).squeeze(1).pow(2)
    for _ in range(1, k):
        i = torch.multinomial(d2 + 1e-12, 1, generator=generator)
        centers.append(x[i])
        d2 = torch.minimum(d2, torch.cdist(x, x[i]).squeeze(1).pow(2))
    return torch.cat(centers)


def cluster_means(x: Tensor, labels: Tensor, centers: Tensor) -> Tensor:
    """Lloyd's update: each centre moves to the mean of its rows of x (an empty cluster keeps its centre)."""
    sums = torch.zeros_like(centers).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=len(centers))[:, None]
    return torch.where(counts > 0, sums / counts.clamp(min=1), centers)


def check_count(k: int, n: int) -> None:
    if not 2 <= k <= n:
        raise ConfigError(f"train.clusters={k}: use 2 to {n} clusters (the training set's size), or 0 for none")


def balanced_kmeans(x: Tensor, k: int, seed: int = 0, iterations: int = ITERATIONS) -> tuple[Tensor, Tensor]:
    """(labels (N,), centres (k, d)) of k equal-size clusters of the rows of x: Lloyd's iterations with
    balanced_assign in place of the nearest-centre step, from a k-means++ start."""
    check_count(k, len(x))
    x = x.double()
    centers = kmeans_pp(x, k, torch.Generator().manual_seed(seed))
    labels = torch.zeros(len(x), dtype=torch.long)
    for _ in range(iterations):
        new = balanced_assign(torch.cdist(x, centers))
        if torch.equal(new, labels):
            break
        labels = new
        centers = cluster_means(x, labels, centers)
    return labels, centers.float()


def class_shares(sizes: Tensor, k: int) -> Tensor:
    """How many of k clusters each class gets: in proportion to its size, at least one, at most its size."""
    share = (sizes.double() * k / sizes.sum()).round().long().clamp(min=1)
    return torch.minimum(share, sizes).masked_fill(sizes == 0, 0)


def within_classes(x: Tensor, labels: Tensor, k: int, seed: int = 0) -> Tensor:
    """The cluster of each row of x: about k balanced k-means clusters fitted inside the classes, each class
    its class_shares of them, numbered class by class (class 0's clusters first)."""
    check_count(k, len(x))
    out = torch.zeros(len(x), dtype=torch.long)
    start = 0
    for c, kc in enumerate(class_shares(torch.bincount(labels), k).tolist()):
        rows = (labels == c).nonzero().squeeze(1)
        if kc > 1:
            out[rows] = start + balanced_kmeans(x[rows], kc, seed)[0]
        elif kc == 1:
            out[rows] = start
        start += kc
    return out


def parents_of(classes: Tensor, labels: Tensor) -> Tensor:
    """Each cluster's class (clusters fitted within classes hold one class each)."""
    parents = torch.zeros(int(classes.max()) + 1, dtype=torch.long)
    return parents.index_copy_(0, classes, labels.long())


def image_features(images: Tensor, dims: int = DIMS) -> Tensor:
    """uint8 images (N, C, H, W) -> (N, dims): pooled to at most POOL px, centred, on the leading principal axes."""
    x = images.float() / 127.5 - 1
    if x.shape[-1] > POOL:
        x = F.adaptive_avg_pool2d(x, POOL)
    x = x.flatten(1).double()
    x -= x.mean(dim=0)
    _, vectors = torch.linalg.eigh(x.T @ x)  # ascending eigenvalues: the last columns lead
    return (x @ vectors[:, -min(dims, x.shape[1]):]).float()


class Clustered:
    """A dataset whose training batches carry pseudo-classes (balanced k-means clusters) instead of labels.

    Everything but the batches and the class count is the wrapped set's own, so the metrics still score
    against the real data (and its real labels, where it has them). `classes` is the cluster of each
    stored image (images) or the centres (2-D points): saved in checkpoints so a resumed run keeps them.
    """

    pseudo = True

    def __init__(self, data: Any, k: int, seed: int = 0, classes: Tensor | None = None, within: bool = False):
        self.inner = data
        if classes is None:
            classes = self._fit(data, k, seed, within)
        self.classes = classes
        # within the set's labels: each cluster's class, so asking for a class draws one of its clusters
        self.class_of = parents_of(classes, data.labels) if within else None
        self.n_classes = len(self.class_of) if within else k
        if not data.pixels:
            return
        self._train = data.with_labels(classes)  # the same set, serving the clusters as its labels
        sizes = torch.bincount(classes, minlength=self.n_classes)
        where = f"within its {data.n_classes} classes " if within else ""
        log.info("train.clusters=%d: %s split %sinto %d balanced k-means clusters of %d-%d images; G and D are "
                 "conditioned on them", k, data.name, where, self.n_classes, int(sizes.min()), int(sizes.max()))

    @staticmethod
    def _fit(data: Any, k: int, seed: int, within: bool) -> Tensor:
        if not data.pixels:  # fresh points take their nearest centre: end on plain k-means
            points = data.draw(FIT_POINTS, seed)[0].double()
            centers = balanced_kmeans(points, k, seed)[1].double()
            for _ in range(ITERATIONS):
                centers = cluster_means(points, torch.cdist(points, centers).argmin(dim=1), centers)
            return centers.float()
        x = image_features(data.all_samples())
        return within_classes(x, data.labels, k, seed) if within else balanced_kmeans(x, k, seed)[0]

    def describe(self) -> dict[str, Any]:
        """The wrapped set's entry with the cluster count and the clusters (a resumed run keeps them), and
        for clusters within the labels each one's class."""
        extra = {"class_of": self.class_of} if self.class_of is not None else {}
        entry = {**self.inner.describe(), "n_classes": self.n_classes, "clusters": self.classes, **extra}
        if self.class_of is None:  # G's classes are the clusters: the labels' names are not theirs
            entry.pop("class_names", None)
        return entry

    def __getattr__(self, name: str) -> Any:  # only for what the instance lacks: the wrapped set's attributes
        if name == "inner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)

    def batches(self, batch_size: int, device: torch.device, seed: int = 0, start: int = 0, rank: int = 0,
                world: int = 1, labels: bool = False) -> Iterator[Any]:
        """The wrapped set's batches, with each sample's cluster as its label when labels=True."""
        if self.inner.pixels:
            return self._train.batches(batch_size, device, seed, start, rank, world, labels=labels)
        points = self.inner.batches(batch_size, device, seed, start, rank, world)
        if not labels:
            return points
        centers = self.classes.to(device)
        return ((x, torch.cdist(x, centers).argmin(dim=1)) for x in points)


AUTO_MIN_IMAGES = 500  # train.clusters=auto leaves smaller sets alone
AUTO_PER_CLUSTER = 100
AUTO_RANGE = (10, 50)


def auto_count(n: int) -> int:
    """train.clusters=auto's K for a set of n images: n / 100 within 10-50 (50 on the 5,000-digit MNIST
    sample, where it was measured); 0 below AUTO_MIN_IMAGES."""
    if n < AUTO_MIN_IMAGES:
        return 0
    return int(min(AUTO_RANGE[1], max(AUTO_RANGE[0], round(n / AUTO_PER_CLUSTER))))


def wrap(data: Any, k: int, seed: int, saved: Tensor | None = None, within: bool = False) -> Any:
    """`data` with pseudo-classes for train.clusters=k (k = 0: `data` itself), fitted within its labels when
    `within`; `saved`: a checkpoint's."""
    if not k:
        return data
    if not data.pixels and data.shape[0] < 2:
        raise ConfigError("train.clusters needs 2-D points or images; the 1-D game has one mode to a class")
    return Clustered(data, k, seed, saved, within)
