"""The baseline every quality claim is measured against: a bare DCGAN loop in the style of
pytorch/examples' dcgan, at 28 px, given a wall-clock budget (or a step count) on the same data.

    python bench/textbook.py --seconds 280 --out /tmp/textbook          # the 5,000-digit MNIST sample
    python bench/textbook.py --dataset mnist --root DIR --seconds 280 --out /tmp/textbook
    ganrun eval samples=/tmp/textbook/samples.npy dataset=mnist-sample   # scored like any run

Nothing of ganrun's training is used: its own G and D (transposed convs / strided convs, BatchNorm,
ReLU / LeakyReLU, tanh / sigmoid), BCE, Adam 2e-4 (0.5, 0.999), batch 64, width 32, one D step and one
G step per iteration on one fake batch, N(0, 0.02) init. Only the dataset is read through ganrun.data.
Writes OUT/samples.npy (n images, (n, 1, 28, 28) in [0, 1]), OUT/grid.png (64 of them) and OUT/run.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


def generator(nz: int, ngf: int) -> nn.Module:
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 4, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),  # (N, 4ngf, 7, 7)
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),  # 14 x 14
        nn.ConvTranspose2d(ngf * 2, 1, 4, 2, 1, bias=False), nn.Tanh())  # (N, 1, 28, 28)


def discriminator(ndf: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),  # (N, ndf, 14, 14)
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),  # 7 x 7
        nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False), nn.Sigmoid(), nn.Flatten())  # (N, 1)


def init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def load(name: str, root: str) -> torch.Tensor:
    from ganrun import data

    ds = data.mnist_sample() if name == "mnist-sample" else data.mnist(root, download=False, on_device=False)
    return ds.images.float().div(127.5).sub(1)  # (N, 1, 28, 28) in [-1, 1]


def train(real: torch.Tensor, seconds: float, steps: int, seed: int, nz: int = 100, width: int = 32,
          batch: int = 64) -> tuple[nn.Module, int, float]:
    torch.manual_seed(seed)
    G, D = generator(nz, width), discriminator(width)
    G.apply(init)
    D.apply(init)
    opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    start, step = time.perf_counter(), 0
    while (steps and step < steps) or (not steps and time.perf_counter() - start < seconds):
        x = real[torch.randint(len(real), (batch,))]
        fake = G(torch.randn(batch, nz, 1, 1))
        ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
        loss_D = bce(D(x), ones) + bce(D(fake.detach()), zeros)
        opt_D.zero_grad()
        loss_D.backward()
        opt_D.step()
        loss_G = bce(D(fake), ones)  # the non-saturating G loss, on the same fake batch
        opt_G.zero_grad()
        loss_G.backward()
        opt_G.step()
        step += 1
    return G.eval(), step, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist-sample", choices=["mnist-sample", "mnist"])
    p.add_argument("--root", default="", help="MNIST IDX folder (for --dataset mnist)")
    p.add_argument("--seconds", type=float, default=280.0, help="training wall-clock budget")
    p.add_argument("--steps", type=int, default=0, help="a fixed step count instead of --seconds")
    p.add_argument("--n", type=int, default=5000, help="samples written")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args()
    G, steps, wall = train(load(args.dataset, args.root), args.seconds, args.steps, args.seed)
    with torch.no_grad():
        z = torch.randn(args.n, 100, 1, 1, generator=torch.Generator().manual_seed(args.seed + 1))
        x = torch.cat([G(c) for c in z.split(1000)]).add(1).div(2).clamp(0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "samples.npy", x.numpy().astype(np.float32))
    from torchvision.utils import save_image

    save_image(x[:64], out / "grid.png", nrow=8, padding=2)
    info = {"dataset": args.dataset, "steps": steps, "train_seconds": round(wall, 1), "seed": args.seed, "n": args.n}
    (out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
