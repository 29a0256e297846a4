"""Which digits does a checkpoint draw? Classify G's samples with a small CNN trained on real MNIST.

    python bench/digit_classes.py CKPT [--mnist DIR] [--n 1000]

Trains a 2-conv classifier for one epoch on MNIST (the IDX files in --mnist, else the offline
5,000-image sample), prints its test accuracy, then the class histogram of n samples from CKPT,
the share of confident (p > 0.9) samples, and KL(histogram || uniform). A quick check of
"all ten classes", not a paper metric (that is the eval issue's job).
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn

from ganrun import checkpoint, data
from ganrun.sample import generate


def classifier() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("--mnist", default="", help="folder with MNIST IDX files (default: the offline sample)")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    torch.manual_seed(0)
    if args.mnist:
        train, test = (data.mnist(args.mnist, download=False, split=s) for s in ("train", "test"))
    else:
        full = data.mnist_sample()
        train = data.TensorImages(full.images[:4000], full.labels[:4000], "train")
        test = data.TensorImages(full.images[4000:], full.labels[4000:], "test")
    net = classifier()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x_all, y_all = train.images.float().div(127.5).sub(1), train.labels
    for _ in range(args.epochs):
        perm = torch.randperm(len(x_all))
        for i in range(0, len(perm), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(net(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(test.images.float().div(127.5).sub(1)).argmax(1) == test.labels).float().mean().item()
        fake, _ = generate(checkpoint.load(args.ckpt), args.n, seed=123, device=torch.device("cpu"))
        prob = F.softmax(net(fake), dim=1)
    counts = torch.bincount(prob.argmax(1), minlength=10)
    hist = counts.float() / counts.sum()
    kl = sum(h * math.log(h * 10) for h in hist.tolist() if h > 0)
    print(f"classifier test accuracy {acc:.3f}")
    print("class counts  " + " ".join(f"{d}:{c}" for d, c in enumerate(counts.tolist())))
    print(f"classes covered {int((counts > 0).sum())}/10, KL(hist || uniform) {kl:.3f}, "
          f"confident (p>0.9) {(prob.max(1).values > 0.9).float().mean().item():.2f}, "
          f"mean max-prob {prob.max(1).values.mean().item():.3f}")


if __name__ == "__main__":
    main()
