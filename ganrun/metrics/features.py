"""Shipped feature networks: the offline instrument behind the image metrics of MNIST-like data.

For MNIST (and the offline 5,000-digit sample, which is MNIST) and Fashion-MNIST, a CNN trained once on
the full 60,000-image training split by `bench/feature_net.py` ships inside the package
(`ganrun/metrics/weights/NAME.pt`, checked against its sha256 below) together with its features of the real
**test** split (10,000 images): their mean and covariance for the Fréchet distance, and the feature
sample itself for precision / recall and density / coverage. So scoring needs no download and no
training at first use. Other labelled image sets train a smaller classifier on first use
(ganrun.metrics.classifier).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.errors import FeatureError

FEATURES = 128
N_CLASSES = 10  # the networks have one more output: "no class" (outlier exposure, see FeatureNet)
SIZE = 28  # the networks see 28x28 grey images; other sizes are resized first
WEIGHTS_DIR = Path(__file__).parent / "weights"
# sha256 of each shipped file, as bench/feature_net.py wrote it
SHIPPED = {
    "mnist": "c02669f9891ad155eafdf6a8bf7caca79edbaf9d00876c999a30b24253cf4738",
    "fashion-mnist": "66fa546ac3ad5307f2ec106dd9addf37d19c1e679c395c9a7af8776ec4d5aeaa",
}
# a dataset object's name -> the shipped network that scores it
FOR_DATASET = {"MNIST": "mnist", "mnist-sample": "mnist", "FashionMNIST": "fashion-mnist"}


class FeatureNet(nn.Module):
    """Three conv blocks (BatchNorm, ReLU, max-pool), a 128-unit feature layer and a linear classifier
    with one output per class plus one for "no class", trained on noise, dots and blobs (outlier
    exposure): a plain classifier reads pure noise as some class with certainty; this one does not."""

    def __init__(self, channels: int = 1, n_classes: int = N_CLASSES):
        super().__init__()
        blocks: list[nn.Module] = []
        for c_in, c_out in ((channels, 32), (32, 64), (64, 128)):  # 28 -> 14 -> 7 -> 3 px
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(128 * 3 * 3, FEATURES), nn.ReLU())
        self.n_classes = n_classes
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURES, n_classes + 1))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (N, 128) of images in [-1, 1], resized to 28 px when they are not."""
        if x.shape[-1] != SIZE or x.shape[-2] != SIZE:
            x = F.interpolate(x.float(), size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
        return self.body(x)

    def classify(self, feats: Tensor) -> Tensor:
        """Class probabilities (N, n_classes) from features: the softmax's class entries, which sum to
        1 - p(no class), so junk gets a low top probability."""
        return torch.softmax(self.head(feats), dim=1)[:, :self.n_classes]

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, n_classes + 1), the last one "no class"."""
        return self.head(self.features(x))


@dataclass
class Reference:
    """Real test-split features of one dataset under its feature network."""

    name: str
    features: Tensor  # (N, 128) float32
    labels: Tensor | None  # (N,) int64; None in a space without classes
    mean: Tensor  # (128,) float64
    cov: Tensor  # (128, 128) float64
    info: dict[str, Any]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    h.update(path.read_bytes())
    return h.hexdigest()


def round_to_half(net: nn.Module) -> None:
    """Round the floating-point weights and buffers to half precision (and back), as the file stores them."""
    with torch.no_grad():
        for t in [*net.parameters(), *net.buffers()]:
            if t.is_floating_point():
                t.copy_(t.half().float())


def pack(net: FeatureNet, features: Tensor, labels: Tensor, info: dict[str, Any]) -> dict[str, Any]:
    """The shipped file's contents: half-precision weights and features, the statistics of those features."""
    half = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    features = features.half()
    wide = features.double()
    return {"format": 1, "weights": half, "features": features, "labels": labels.to(torch.uint8),
            "mean": wide.mean(0), "cov": torch.cov(wide.T), "info": info}


def unpack(blob: dict[str, Any], name: str) -> tuple[FeatureNet, Reference]:
    net = FeatureNet()
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["weights"].items()})
    ref = Reference(name, blob["features"].float(), blob["labels"].long(), blob["mean"], blob["cov"], blob["info"])
    return net.eval(), ref


def shipped(dataset_name: str) -> str | None:
    """The shipped network's name for a dataset object's name, or None."""
    return FOR_DATASET.get(dataset_name)


def load(name: str, path: Path | None = None) -> tuple[FeatureNet, Reference]:
    """The shipped feature network `name` and its test-split reference; the file's sha256 is checked."""
    path = path or WEIGHTS_DIR / f"{name}.pt"
    if not path.is_file():
        raise FeatureError(f"{path}: the shipped {name} feature network is missing; reinstall ganrun, "
                                f"or rebuild it with bench/feature_net.py")
    want = SHIPPED.get(name, "")
    if want and file_sha256(path) != want:
        raise FeatureError(f"{path}: sha256 does not match the shipped {name} feature network; reinstall ganrun")
    return unpack(torch.load(path, map_location="cpu", weights_only=True), name)
