"""The baseline every quality claim is measured against: a bare DCGAN loop in the style of
pytorch/examples' dcgan, given a wall-clock budget (or a step count) on the same data, any image set.

    python bench/textbook.py --seconds 280 --out /tmp/textbook            # the 5,000-digit MNIST sample
    python bench/textbook.py --data dataset=zip dataset.path=emoji.zip dataset.image_size=64 \
        --seconds 300 --out /tmp/textbook-emoji                            # any ganrun image set, 28/32/64 px
    ganrun eval samples=/tmp/textbook/samples.npy dataset=mnist-sample     # scored like any run

Nothing of ganrun's training is used: its own G and D (transposed convs / strided convs, BatchNorm,
ReLU / LeakyReLU, tanh / sigmoid), BCE, Adam 2e-4 (0.5, 0.999), batch 64, one D step and one G step per
iteration on one fake batch, N(0, 0.02) init, no labels. At 64 px it is pytorch/examples' dcgan layer for
layer (width 64); at 32 px the same with one up-sampling fewer; at 28 px a 7x7 start (width 32). Only
the dataset is read through ganrun (`--data`: the overrides `ganrun train` would take).
Writes OUT/samples.npy (n images, (n, C, H, W) uint8), OUT/grid.png (64 of them) and OUT/run.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


def generator(nz: int, ngf: int, nc: int, size: int) -> nn.Module:
    if size == 28:
        return nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),  # 7 x 7
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),  # 14
            nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False), nn.Tanh())  # 28 x 28
    ups = int(math.log2(size // 4))  # 32 px: 3, 64 px: 4
    layers, ch = [nn.ConvTranspose2d(nz, ngf * 2 ** (ups - 1), 4, 1, 0, bias=False)], ngf * 2 ** (ups - 1)  # 4 x 4
    layers += [nn.BatchNorm2d(ch), nn.ReLU(True)]
    for _ in range(ups - 1):
        layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
        ch //= 2
    return nn.Sequential(*layers, nn.ConvTranspose2d(ch, nc, 4, 2, 1, bias=False), nn.Tanh())


def discriminator(ndf: int, nc: int, size: int) -> nn.Module:
    if size == 28:
        return nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),  # 14 x 14
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),  # 7
            nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False), nn.Sigmoid(), nn.Flatten())
    downs = int(math.log2(size // 4))
    layers, ch = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)], ndf
    for _ in range(downs - 1):
        layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
        ch *= 2
    return nn.Sequential(*layers, nn.Conv2d(ch, 1, 4, 1, 0, bias=False), nn.Sigmoid(), nn.Flatten())


def init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def load(overrides: list[str]) -> tuple[torch.Tensor, str]:
    """Every image of the set ganrun's overrides name, in [-1, 1], and the set's name."""
    from ganrun.config import compose
    from ganrun.config.targets import instantiate

    ds = instantiate(compose(overrides).dataset, "dataset")
    if not ds.pixels or ds.shape[-1] not in (28, 32, 64):
        raise SystemExit(f"textbook.py: needs an image set at 28, 32 or 64 px, got {ds.name} {tuple(ds.shape)}")
    return ds.all_samples().float().div(127.5).sub(1), ds.name


def train(real: torch.Tensor, seconds: float, steps: int, seed: int, device: torch.device, nz: int = 100,
          width: int = 0, batch: int = 64) -> tuple[nn.Module, int, float]:
    nc, size = real.shape[1], real.shape[-1]
    width = width or (32 if size == 28 else 64)
    torch.manual_seed(seed)
    G, D = generator(nz, width, nc, size).to(device), discriminator(width, nc, size).to(device)
    G.apply(init)
    D.apply(init)
    real = real.to(device)
    opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    ones, zeros = torch.ones(batch, 1, device=device), torch.zeros(batch, 1, device=device)
    start, step = time.perf_counter(), 0
    while (steps and step < steps) or (not steps and time.perf_counter() - start < seconds):
        x = real[torch.randint(len(real), (batch,), device=device)]
        fake = G(torch.randn(batch, nz, 1, 1, device=device))
        loss_D = bce(D(x), ones) + bce(D(fake.detach()), zeros)
        opt_D.zero_grad()
        loss_D.backward()
        opt_D.step()
        loss_G = bce(D(fake), ones)  # the non-saturating G loss, on the same fake batch
        opt_G.zero_grad()
        loss_G.backward()
        opt_G.step()
        step += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return G.eval(), step, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="*", default=["dataset=mnist-sample"], help="ganrun dataset overrides")
    p.add_argument("--seconds", type=float, default=280.0, help="training wall-clock budget")
    p.add_argument("--steps", type=int, default=0, help="a fixed step count instead of --seconds")
    p.add_argument("--width", type=int, default=0, help="ngf = ndf (0: 32 at 28 px, 64 otherwise)")
    p.add_argument("--n", type=int, default=5000, help="samples written")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    real, name = load(args.data)
    G, steps, wall = train(real, args.seconds, args.steps, args.seed, device, width=args.width)
    with torch.no_grad():
        z = torch.randn(args.n, 100, 1, 1, generator=torch.Generator().manual_seed(args.seed + 1))
        x = torch.cat([G(c.to(device)).cpu() for c in z.split(500)]).add(1).div(2).clamp(0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "samples.npy", x.mul(255).round().to(torch.uint8).numpy())
    from torchvision.utils import save_image

    save_image(x[:64], out / "grid.png", nrow=8, padding=2)
    info = {"dataset": name, "data": args.data, "shape": list(real.shape[1:]), "device": device.type,
            "steps": steps, "train_seconds": round(wall, 1), "steps_per_s": round(steps / wall, 2),
            "seed": args.seed, "n": args.n}
    (out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
