"""Train a shipped feature network (ganrun.features) once, seeded, and write it with its test-split features.

    python bench/feature_net.py mnist --root DIR            # -> ganrun/metrics/weights/mnist.pt
    python bench/feature_net.py fashion-mnist --root DIR    # -> ganrun/metrics/weights/fashion-mnist.pt
    python bench/feature_net.py mnist --root DIR --out /tmp/x/mnist.pt   # a rebuild, to compare (keep the
                                                                         # name: torch.save names its archive after it)

DIR holds the dataset's four IDX files (flat, or torchvision's NAME/raw/ layout). Training: the full
60,000-image training split, Adam with a linear decay to 0, random shifts of up to 2 px, and outlier
exposure (noise, dots and blobs taught as an 11th output, "no class"), on the CPU with
2 threads and deterministic kernels, so a rebuild on the same kind of machine gives the same bytes
(elsewhere the same scores to about 3 digits). Prints the test accuracy, the file and its sha256, which
goes into ganrun.features.SHIPPED.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ganrun import data
from ganrun.metrics import classifier, features

EPOCHS = {"mnist": 6, "fashion-mnist": 12}
LOADERS = {"mnist": data.mnist, "fashion-mnist": data.fashion_mnist}


def shift(x: torch.Tensor, g: torch.Generator, most: int = 2) -> torch.Tensor:
    """Each image moved by a random whole number of pixels in [-most, most] along each axis (zeros fill in)."""
    n, size = x.shape[0], x.shape[-1]
    d = torch.randint(-most, most + 1, (n, 2), generator=g).float() * 2 / size
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = d
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1


def outliers(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """n grey images in [-1, 1] that are no class at all (the metrics' own outlier images)."""
    return classifier.outliers(n, 1, size, g)


def train(name: str, images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int) -> features.FeatureNet:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = features.FeatureNet()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    batch = 128
    total = epochs * ((len(images) + batch - 1) // batch)
    done = 0
    for epoch in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(images), generator=g)
        net.train()
        for i in range(0, len(perm), batch):
            for group in opt.param_groups:
                group["lr"] = 1e-3 * (1 - done / total)
            idx = perm[i:i + batch]
            junk = outliers(len(idx) // 4, images.shape[-1], g)
            x = torch.cat([shift(data.to_unit_range(images[idx]), g), junk])
            # real images: their class; junk: the extra "no class" output (outlier exposure), so that a
            # confident reading means a real-looking image and noise is not read as a class without doubt
            target = torch.cat([labels[idx], torch.full((len(junk),), features.N_CLASSES)])
            loss = F.cross_entropy(net(x), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
        print(f"{name}: epoch {epoch + 1}/{epochs}, last loss {loss.item():.4f}, {time.perf_counter() - start:.0f} s",
              flush=True)
    return net.eval()


@torch.no_grad()
def test_features(net: features.FeatureNet, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([net.features(data.to_unit_range(x)) for x in images.split(1000)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(EPOCHS))
    p.add_argument("--root", required=True, help="folder with the dataset's IDX files")
    p.add_argument("--out", default="", help="output file (default: ganrun/metrics/weights/NAME.pt)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=0, help="default: 6 for mnist, 12 for fashion-mnist")
    args = p.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    load = LOADERS[args.name]
    tr = load(args.root, download=False, split="train", on_device=False)
    te = load(args.root, download=False, split="test", on_device=False)
    epochs = args.epochs or EPOCHS[args.name]
    net = train(args.name, tr.images, tr.labels, epochs, args.seed)
    features.round_to_half(net)  # score and describe the network as it ships
    feats = test_features(net, te.images)
    accuracy = float((net.classify(feats).argmax(1) == te.labels).float().mean())
    info = {"dataset": args.name, "train_images": len(tr.images), "test_images": len(te.images),
            "epochs": epochs, "seed": args.seed, "test_accuracy": round(accuracy, 4),
            "script": "bench/feature_net.py"}
    out = Path(args.out) if args.out else features.WEIGHTS_DIR / f"{args.name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(features.pack(net, feats, te.labels, info), out)
    print(json.dumps({**info, "file": str(out), "sha256": features.file_sha256(out)}, indent=2))


if __name__ == "__main__":
    main()
