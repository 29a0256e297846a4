"""A small CNN trained once per dataset and cached: the offline feature extractor for metrics.

A labelled set trains it to tell the classes apart ("classes"); an unlabelled one, self-supervised, to
tell which of four rotations (0, 90, 180, 270 degrees) an image was turned by ("rotation", Gidaris et
al. 2018: to answer, the network has to learn what the objects look like upright). Its penultimate
layer (128 features) feeds the Fréchet distance, KID and precision / recall; a classifier's predictions
also give class coverage. Images over 32 px are average-pooled to 32 px first, so training takes a CPU
minute or two. Numbers from it compare runs on the same dataset with each other, not with papers
(papers use Inception features).
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.artifacts import checkpoint
from ganrun.data import to_unit_range
from ganrun.data.decoded import cache_root
from ganrun.errors import UserError

log = logging.getLogger(__name__)

FEATURES = 128
MAX_SIZE = 32  # larger images are average-pooled to this size before the network
TASKS = ("classes", "rotation")
VERSION = 2  # in the cache file name: a change of the network's shape never loads old weights
BATCH = 128
FIT_THREADS = 2  # fixed, not the run's: the same weights under taskset, OMP_NUM_THREADS or on one CPU
MIN_EPOCHS = {"classes": 3, "rotation": 4}
MIN_UPDATES = {"classes": 480, "rotation": 0}  # a small labelled set (a user's) trains more epochs than 3...
MAX_EPOCHS = 20  # ...up to this many: 72 updates left four of the Twitter emoji's 9 categories unread


class SmallCNN(nn.Module):
    """Two conv blocks, a 128-unit feature layer, a linear head; for 28-64 px images (pooled to <= 32 px).
    The head's last output is "no class at all", taught on noise, dots and blobs (outlier exposure)."""

    def __init__(self, channels: int, size: int, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        self.size = min(size, MAX_SIZE)
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 32, s/2, s/2)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 64, s/4, s/4)
            nn.Flatten(), nn.Linear(64 * (self.size // 4) ** 2, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, n_classes + 1)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (N, 128) of images in [-1, 1]."""
        if x.shape[-1] > self.size:
            x = F.adaptive_avg_pool2d(x, self.size)
        return self.body(x)

    def classify(self, feats: Tensor) -> Tensor:
        """Class probabilities (N, classes) from features."""
        return torch.softmax(self.head(feats), dim=1)[:, :self.n_classes]  # "no class" takes the rest

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def data_digest(images: Tensor, labels: Tensor) -> str:
    """sha1 of a labelled set's bytes: the cache key, so another dataset never reuses a classifier."""
    h = hashlib.sha1()
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


def weights_digest(net: nn.Module) -> str:
    """sha256 over the classifier's weights, saved beside every score it produced."""
    h = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_dir() -> Path:
    return cache_root() / "classifiers"


def rotated(x: Tensor) -> tuple[Tensor, Tensor]:
    """Every image of x turned by 0, 90, 180 and 270 degrees, and which turn each got (0-3)."""
    turns = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
    return turns, torch.arange(4).repeat_interleave(len(x))


def outliers(n: int, channels: int, size: int, g: torch.Generator) -> Tensor:
    """n images in [-1, 1] that are no class at all: uniform noise, sparse dots and smooth blobs in turn."""
    kind = torch.arange(n) % 3
    x = torch.rand(n, channels, size, size, generator=g) * 2 - 1
    dots = (torch.rand(n, channels, size, size, generator=g) < torch.rand(n, 1, 1, 1, generator=g) * 0.3).float() * 2 - 1
    blobs = F.interpolate(torch.randn(n, channels, 7, 7, generator=g), size=(size, size), mode="bilinear",
                          align_corners=False).mul(2).tanh()
    return torch.where((kind == 1)[:, None, None, None], dots, torch.where((kind == 2)[:, None, None, None], blobs, x))


def task_batch(images: Tensor, labels: Tensor | None, task: str) -> tuple[Tensor, Tensor]:
    """(inputs in [-1, 1], targets) of one batch of uint8 images for the task."""
    x = to_unit_range(images)
    return rotated(x) if task == "rotation" else (x, labels)


def with_outliers(x: Tensor, y: Tensor, no_class: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """A batch with a quarter more images that are no class at all, their target the "no class" output: so
    noise is not embedded among real images nor read as a class (outlier exposure)."""
    junk = outliers(max(1, len(x) // 4), x.shape[1], x.shape[-1], g)
    return torch.cat([x, junk]), torch.cat([y, torch.full((len(junk),), no_class)])


def epochs_for(n_images: int, task: str) -> int:
    """Epochs for a feature network on n training images: at least MIN_EPOCHS, and, on a small set, enough
    to make MIN_UPDATES Adam updates, capped at MAX_EPOCHS."""
    batches = math.ceil(n_images / BATCH)
    return max(MIN_EPOCHS[task], min(MAX_EPOCHS, math.ceil(MIN_UPDATES[task] / batches)))


def fit_classifier(images: Tensor, labels: Tensor | None, epochs: int = 3, seed: int = 0,
                   task: str = "classes") -> SmallCNN:
    """Train a SmallCNN on uint8 images (N, C, H, W) for the task (labels for "classes"), on the CPU, in
    FIT_THREADS threads: the same data and seed give the same weights (and feature space) however many threads
    the run that trains it first has (trained in 1 and in 2 threads, the weights differ from the first steps on)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(FIT_THREADS)
    try:
        return _fit(images, labels, epochs, seed, task)
    finally:
        torch.set_num_threads(threads)


def _fit(images: Tensor, labels: Tensor | None, epochs: int, seed: int, task: str) -> SmallCNN:
    g = torch.Generator().manual_seed(seed)
    torch_state = torch.get_rng_state()
    torch.manual_seed(seed)  # init; restored below so training runs keep their own RNG stream
    outputs = 4 if task == "rotation" else int(labels.max()) + 1
    net = SmallCNN(images.shape[1], images.shape[2], outputs)
    torch.set_rng_state(torch_state)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=g)
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            x, y = with_outliers(*task_batch(images[idx], labels[idx] if labels is not None else None, task), outputs, g)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, images: Tensor, labels: Tensor | None, task: str = "classes") -> float:
    """The share of the task's answers the network gets right (classes, or each image's four turns)."""
    correct = total = 0
    for i in range(0, len(images), 500):
        x, y = task_batch(images[i:i + 500], labels[i:i + 500] if labels is not None else None, task)
        correct, total = correct + int((net(x).argmax(1) == y).sum()), total + len(y)
    return correct / total


def read_cached(path: Path) -> tuple[SmallCNN, dict[str, Any]] | None:
    """A cached feature network and its info, or None when the file is corrupt, foreign or its weights are
    not the ones it was saved with (a cache is rebuilt, never trusted)."""
    try:
        ckpt = checkpoint.load(path)
        net = SmallCNN(*ckpt["arch"])
        net.load_state_dict(ckpt["weights"])
        if weights_digest(net) != ckpt["info"]["weights_sha256"]:
            return None
    except (UserError, KeyError, TypeError, ValueError, RuntimeError):
        return None
    return net.eval(), ckpt["info"]


def load_or_train(name: str, train: Any, test: Any, task: str = "classes") -> tuple[SmallCNN, dict[str, Any]]:
    """The cached feature network for this train split and task (trained and saved on first use), and
    its info. task: "classes" (the split's labels) or "rotation" (self-supervised, no labels needed)."""
    labels = train.labels if task == "classes" else None
    key = data_digest(train.images, labels if labels is not None else torch.zeros(0))
    epochs = epochs_for(len(train.images), task)
    tail = f"-{task}-v{VERSION}-e{epochs}-{key[:16]}.pt"
    path = cache_dir() / f"{name}{tail}"
    if path.is_file():
        cached = read_cached(path)
        if cached is not None:
            return cached
        log.warning("the cached feature network %s is unreadable or altered: training it again", path)
    for other in sorted(cache_dir().glob(f"*{tail}")) if cache_dir().is_dir() else []:
        cached = read_cached(other) if other != path else None  # the same images under another name (a renamed file)
        if cached is not None:
            log.info("the %s feature network: the one trained on the same images as %s", name, cached[1]["dataset"])
            return cached
    log.info("training the %s feature network on %s (once, %d images; cached in %s)", name,
             "its classes" if task == "classes" else "which way each image is turned", len(train.images), path.parent)
    net = fit_classifier(train.images, labels, epochs, task=task)
    info = {"dataset": name, "task": task, "train_images": len(train.images), "data_sha1": key, "epochs": epochs,
            "test_accuracy": round(accuracy(net, test.images, test.labels if labels is not None else None, task), 4),
            "weights_sha256": weights_digest(net)}
    arch = [train.images.shape[1], train.images.shape[2], int(labels.max()) + 1 if labels is not None else 4]
    checkpoint.save(path, {"format": checkpoint.FORMAT, "arch": arch, "weights": net.state_dict(), "info": info})
    return net, info
