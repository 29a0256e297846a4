"""The ResNet GAN of SNGAN (Miyato et al. 2018, appendix table for CIFAR-10), at 32 or 64 px, any channels.

G: z (128) -> linear -> 4x4 x g_width -> residual up-blocks (BatchNorm, ReLU, nearest x2, 3x3 conv, twice;
a 1x1 conv on the up-sampled shortcut) until the image size -> BatchNorm, ReLU, 3x3 conv, tanh.
D: residual down-blocks of d_width channels (ReLU, 3x3 conv, twice, then 2x2 average pooling; the first
block without the leading ReLU), then two blocks without pooling, ReLU, a sum over positions and a
linear layer; spectral normalisation on every D weight (spectral_norm=true, the paper's setting).
At 32 px with latent 128, g_width 256 and d_width 128: G 4,276,739 and D 1,053,825 parameters.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.models.common import Latent, check_latent, maybe_sn

BOTTOM = 4  # G's first feature map is BOTTOM x BOTTOM
SIZES = (32, 64)


def check_size(height: int, width_px: int) -> None:
    """The image sizes the ResNet is built for (SIZES), or one line saying which to set."""
    if height != width_px or height not in SIZES:
        raise ValueError(f"model=resnet needs square 32 or 64 px images, got {height}x{width_px}; "
                         f"set dataset.image_size=32 (MNIST-style sets too) or use model=dcgan")


class UpBlock(nn.Module):
    """x -> BN, ReLU, up x2, conv3 -> BN, ReLU, conv3; plus up x2 then conv1 of x."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.interpolate(F.relu(self.bn1(x)), scale_factor=2.0, mode="nearest"))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    """x -> [ReLU], conv3 -> ReLU, conv3 -> [avg pool 2]; plus a 1x1 conv (then pooling) of x when the
    channels change or it pools. first: no ReLU before the first conv and the shortcut pools first."""

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool, sn: bool):
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = maybe_sn(nn.Conv2d(c_in, c_out, 3, 1, 1), sn)
        self.conv2 = maybe_sn(nn.Conv2d(c_out, c_out, 3, 1, 1), sn)
        self.skip = maybe_sn(nn.Conv2d(c_in, c_out, 1), sn) if (down or c_in != c_out) else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.skip is None:
            return h + x
        if self.first:  # pool, then project (cheaper on the 3-channel input)
            return h + self.skip(F.avg_pool2d(x, 2))
        s = self.skip(x)
        return h + (F.avg_pool2d(s, 2) if self.down else s)


class ResNetGenerator(nn.Module):
    n_classes = 0  # unconditional (every G says how many classes it draws)

    def __init__(self, channels: int, size: int, latent_dim: int, width: int, latent: Latent = "gaussian"):
        super().__init__()
        self.latent_dim, self.latent, self.width = latent_dim, latent, width
        self.linear = nn.Linear(latent_dim, BOTTOM * BOTTOM * width)
        n_up = (size // BOTTOM).bit_length() - 1
        self.blocks = nn.Sequential(*[UpBlock(width, width) for _ in range(n_up)])
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        h = self.linear(z.flatten(1)).view(z.shape[0], self.width, BOTTOM, BOTTOM)
        return self.out(self.blocks(h))


class ResNetDiscriminator(nn.Module):
    def __init__(self, channels: int, size: int, width: int, spectral_norm: bool = True):
        super().__init__()
        n_down = (size // 8).bit_length() - 1  # 32 px: 2 pooling blocks down to 8x8; 64 px: 3
        blocks = [DownBlock(channels, width, True, True, spectral_norm)]
        blocks += [DownBlock(width, width, True, False, spectral_norm) for _ in range(n_down - 1)]
        blocks += [DownBlock(width, width, False, False, spectral_norm) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = maybe_sn(nn.Linear(width, 1), spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        return self.linear(h).view(-1)


def make(data_shape: Sequence[int], latent_dim: int = 128, g_width: int = 256, d_width: int = 128,
         spectral_norm: bool = True, latent: Latent = "gaussian") -> tuple[nn.Module, nn.Module]:
    """Build the SNGAN ResNet (G, D) for images of `data_shape` (C, 32 or 64, same)."""
    check_latent(latent)
    if len(data_shape) != 3:
        raise ValueError("model=resnet is for images; use model=mlp for 2-D point sets")
    channels, height, width_px = data_shape
    check_size(height, width_px)
    if latent_dim < 1 or g_width < 1 or d_width < 1:
        raise ValueError(f"model: latent_dim={latent_dim}, g_width={g_width}, d_width={d_width} must be >= 1")
    return (ResNetGenerator(channels, height, latent_dim, g_width, latent),
            ResNetDiscriminator(channels, height, d_width, spectral_norm))
