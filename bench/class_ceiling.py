"""How well can a classifier trained on a labelled set read its own held-out images? The ceiling of the hit
rate a conditional G can be measured at: the metrics' classifier (ganrun.metrics.classifier, as shipped)
beside a wider CNN with BatchNorm, flips, shifts and a cosine schedule, both trained on the set's training
split (with the same outlier exposure) and read on its fixed held-out split.

    python bench/class_ceiling.py --data dataset=zip dataset.path=emoji.zip dataset.image_size=32
                                  [--epochs 30] [--threads 2]

Prints, per network: the balanced hit rate (the mean of the per-class accuracies, as the metrics' hit_rate
averages them), the plain accuracy, each class's accuracy and the training time.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.config import compose
from ganrun.config.targets import instantiate
from ganrun.data import to_unit_range as unit
from ganrun.metrics import classifier
from ganrun.metrics.evaluator import hit_rates


class WideCNN(nn.Module):
    """Three blocks of two 3x3 convs with BatchNorm (32, 64, 128 maps), global pooling, dropout, a linear head
    with one more output for "no class"."""

    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((channels, 32), (32, 64), (64, 128)):
            for a, b in ((c_in, c_out), (c_out, c_out)):
                layers += [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3))
        self.head = nn.Linear(128, n_classes + 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def flip_and_shift(x: Tensor, g: torch.Generator, pad: int = 4) -> Tensor:
    """Each image mirrored with probability 1/2; the batch shifted by up to pad pixels, filled with white."""
    flip = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=g).tolist()
    size = x.shape[-1]
    return F.pad(x, (pad,) * 4, value=1.0)[..., dy:dy + size, dx:dx + size]


def fit_wide(images: Tensor, labels: Tensor, epochs: int) -> WideCNN:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    k = int(labels.max()) + 1
    net = WideCNN(images.shape[1], k)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(images), generator=g)
        for i in range(0, len(perm), classifier.BATCH):
            idx = perm[i:i + classifier.BATCH]
            x, y = classifier.with_outliers(flip_and_shift(unit(images[idx]), g), labels[idx], k, g)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        schedule.step()
    return net.eval()


@torch.no_grad()
def read(net: nn.Module, images: Tensor, labels: Tensor) -> tuple[float, float, list[float]]:
    """(balanced hit rate, accuracy, per-class accuracies) on held-out images."""
    pred = torch.cat([net(unit(images[i:i + 500])).argmax(1) for i in range(0, len(images), 500)])
    per = [rate for rate in hit_rates(pred, labels, int(labels.max()) + 1) if not math.isnan(rate)]
    return sum(per) / len(per), float((pred == labels).float().mean()), per


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="*", required=True, help="ganrun dataset overrides of a labelled image set")
    p.add_argument("--epochs", type=int, default=30, help="the wider CNN's epochs")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = instantiate(compose(args.data).dataset, "dataset")
    if getattr(data, "labels", None) is None or not data.pixels or data.make_split is None:
        raise SystemExit("class_ceiling.py: needs a labelled image set with a held-out split (folder, zip or hf)")
    train, test = data.make_split("train"), data.make_split("test")
    trainers = {"metrics' classifier (as shipped)": lambda: classifier.fit_classifier(
                    train.images, train.labels, classifier.epochs_for(len(train.images), "classes")),
                f"wider CNN, flips and shifts, {args.epochs} epochs": lambda: fit_wide(train.images, train.labels,
                                                                                    args.epochs)}
    print(f"{len(train.images)} training and {len(test.images)} held-out images, {int(train.labels.max()) + 1} classes")
    for name, fit in trainers.items():
        start = time.perf_counter()
        net = fit()
        balanced, acc, per = read(net, test.images, test.labels)
        print(f"{name}: balanced hit rate {balanced:.3f}, accuracy {acc:.3f}, per class "
              f"{' '.join(f'{a:.2f}' for a in per)} ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
