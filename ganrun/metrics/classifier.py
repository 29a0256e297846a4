"""A small CNN trained once per labelled dataset and cached: the offline feature extractor for metrics.

Its penultimate layer (128 features) feeds the Fréchet distance and KID; its class predictions give
class coverage. Numbers from it compare runs on the same dataset with each other, not with papers
(papers use Inception features).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.artifacts import checkpoint
from ganrun.data import to_unit_range

log = logging.getLogger(__name__)

FEATURES = 128


class SmallCNN(nn.Module):
    """Two conv blocks, a 128-unit feature layer, a linear classifier; for 28-64 px images."""

    def __init__(self, channels: int, size: int, n_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 32, s/2, s/2)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 64, s/4, s/4)
            nn.Flatten(), nn.Linear(64 * (size // 4) ** 2, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (N, 128) of images in [-1, 1]."""
        return self.body(x)

    def classify(self, feats: Tensor) -> Tensor:
        """Class probabilities (N, classes) from features."""
        return torch.softmax(self.head(feats), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


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
    return Path(os.path.expanduser(os.environ.get("GANRUN_CACHE", "~/.cache/ganrun"))) / "classifiers"


def fit_classifier(images: Tensor, labels: Tensor, epochs: int = 3, seed: int = 0) -> SmallCNN:
    """Train a SmallCNN on uint8 images (N, C, H, W) with integer labels, on the CPU."""
    g = torch.Generator().manual_seed(seed)
    torch_state = torch.get_rng_state()
    torch.manual_seed(seed)  # init; restored below so training runs keep their own RNG stream
    net = SmallCNN(images.shape[1], images.shape[2], int(labels.max()) + 1)
    torch.set_rng_state(torch_state)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=g)
        for i in range(0, len(perm), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(net(to_unit_range(images[idx])), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, images: Tensor, labels: Tensor) -> float:
    correct = sum(int((net(to_unit_range(x)).argmax(1) == y).sum()) for x, y in zip(images.split(1000), labels.split(1000)))
    return correct / len(images)


def load_or_train(name: str, train: Any, test: Any, epochs: int = 3) -> tuple[SmallCNN, dict[str, Any]]:
    """The cached classifier for this labelled train split (trained and saved on first use) and its info."""
    key = data_digest(train.images, train.labels)
    path = cache_dir() / f"{name}-{key[:16]}.pt"
    if path.is_file():
        ckpt = checkpoint.load(path)
        net = SmallCNN(*ckpt["arch"])
        net.load_state_dict(ckpt["weights"])
        return net.eval(), ckpt["info"]
    log.info("training the %s feature classifier (once; cached in %s)", name, path.parent)
    net = fit_classifier(train.images, train.labels, epochs)
    info = {"dataset": name, "train_images": len(train.images), "data_sha1": key, "epochs": epochs,
            "test_accuracy": round(accuracy(net, test.images, test.labels), 4), "weights_sha256": weights_digest(net)}
    arch = [train.images.shape[1], train.images.shape[2], int(train.labels.max()) + 1]
    checkpoint.save(path, {"format": checkpoint.FORMAT, "arch": arch, "weights": net.state_dict(), "info": info})
    return net, info
