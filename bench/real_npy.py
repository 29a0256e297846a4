"""Real images as `ganrun sample out=*.npy` writes samples, so `ganrun eval samples=` scores real data.

    python bench/real_npy.py mnist-sample --out real.npy                       # the offline 5,000 digits
    python bench/real_npy.py mnist --root DIR --split test --n 5000 --out test.npy
    ganrun eval samples=test.npy dataset=mnist dataset.root=DIR

Writes n images (a seeded random subset of the split) as (n, C, H, W) float32 in [0, 1], and their
with --labels, their classes beside them as OUT.labels.npy (which `ganrun eval` reads as the
classes asked for, as for a conditional G).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ganrun import data

LOADERS = {"mnist": data.mnist, "fashion-mnist": data.fashion_mnist}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=["mnist-sample", *LOADERS])
    p.add_argument("--root", default="", help="the IDX folder (mnist, fashion-mnist)")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", action="store_true", help="also write OUT.labels.npy")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.dataset == "mnist-sample":
        ds = data.mnist_sample()
    else:
        ds = LOADERS[args.dataset](args.root, download=False, split=args.split, on_device=False)
    idx = torch.randperm(len(ds.images), generator=torch.Generator().manual_seed(args.seed))[:args.n]
    np.save(args.out, (ds.images[idx].float() / 255).numpy())
    if args.labels:
        np.save(args.out.removesuffix(".npy") + ".labels.npy", ds.labels[idx].numpy())
    print(f"wrote {len(idx)} {args.dataset} {args.split} images to {args.out}")


if __name__ == "__main__":
    main()
