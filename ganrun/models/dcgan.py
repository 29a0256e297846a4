"""DCGAN (Radford et al. 2016) sized from the data: 28, 32 or 64 px, any channel count.

G up-samples with stride-2 transposed convs (kernel 4: divisible by the stride, so no
checkerboard), BatchNorm + ReLU, tanh output. D mirrors it with stride-2 convs (no pooling) and
LeakyReLU(0.2), BatchNorm from its second layer on, and returns one logit per image.
At 64 px, latent 100, width 64 and 3 channels, both match pytorch/examples' dcgan layer for layer.
Toy point sets (data_shape (2,) or (1,)) get the MLP pair with a linear output instead.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ganrun.models import mlp
from ganrun.models.common import (
    ClassHead,
    ClassInput,
    ClassPlanes,
    Conditional,
    DCondition,
    Latent,
    MinibatchStd,
    Norm,
    Packed,
    Projection,
    check_conditional,
    check_d_condition,
    check_latent,
    d_norm_layer,
    dcgan_init,
    maybe_sn,
)

SIZES = {28: 7, 32: 4, 64: 4}  # image size -> spatial size of G's first feature map


def check_size(height: int, width_px: int) -> None:
    """The image sizes the DCGAN is built for (SIZES), or one line saying which to set."""
    if height != width_px or height not in SIZES:
        raise ValueError(f"model=dcgan needs square 28, 32 or 64 px images, got {height}x{width_px}; "
                         f"set dataset.image_size to one of {sorted(SIZES)} or use model=mlp")


def _channels(size: int, width: int) -> list[int]:
    """Feature-map channels from G's first map down to its last hidden one, e.g. 64 px: [8w, 4w, 2w, w]."""
    n_up = (size // SIZES[size]).bit_length() - 1  # number of stride-2 doublings
    return [width * 2 ** i for i in reversed(range(n_up))]


REFERENCE = (1, 28, 64)  # channels, size, width of the default run (MNIST): the step cost width=auto matches
MIN_AUTO_WIDTH = 32


def step_cost(channels: int, size: int, width: int, latent_dim: int = 100) -> int:
    """Multiply-adds of G and D on one image (convolutions only), the cost that sets a step's time."""
    ch, base = _channels(size, width), SIZES[size]
    g = base * base * ch[0] * latent_dim + 16 * size * size // 4 * ch[-1] * channels
    d = 16 * size * size // 4 * ch[-1] * channels + base * base * ch[0]
    for i, (c_in, c_out) in enumerate(zip(ch, ch[1:])):
        side = base * 2 ** i  # G's input side for this up-sampling layer, D's output side for its mirror
        g += 16 * side * side * c_in * c_out
        d += 16 * side * side * c_in * c_out
    return g + d


def auto_width(data_shape: Sequence[int]) -> int:
    """model.width=auto: the multiple of 8 (up to 64) whose step cost is nearest the default run's (28 px grey,
    width 64), but at least MIN_AUTO_WIDTH: 64 at 28 px, 40 at 32 px RGB, 32 at 64 px RGB (whose steps then
    cost about 4x). So the default run takes about the same time on any small image set."""
    channels, size = data_shape[0], data_shape[-1]
    budget = step_cost(*REFERENCE)
    nearest = min(range(8, 65, 8), key=lambda w: abs(math.log(step_cost(channels, size, w) / budget)))
    return max(nearest, MIN_AUTO_WIDTH)


class DCGANGenerator(ClassInput, nn.Module):
    """z (N, latent_dim) [and class labels y (N,) when conditional] -> image (N, C, size, size) in [-1, 1]."""

    def __init__(self, channels: int, size: int, latent_dim: int, width: int, n_classes: int = 0,
                 latent: Latent = "gaussian"):
        super().__init__()
        self.latent_dim = latent_dim
        self.latent = latent
        self.init_classes(n_classes)
        ch = _channels(size, width)
        # (N, latent (+ class embedding), 1, 1) -> (N, ch[0], base, base): a transposed conv as big as the map
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim + self.class_dim, ch[0], SIZES[size], 1, 0, bias=False),
                                   nn.BatchNorm2d(ch[0]), nn.ReLU(True)]
        for c_in, c_out in zip(ch, ch[1:]):  # each doubles H and W, halves channels
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ch[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]  # (N, C, size, size)
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        z = self.with_class(z, y)
        return self.net(z.view(z.shape[0], -1, 1, 1))


def plane_conv(x: Tensor, y: Tensor | None, weight: Tensor) -> Tensor:
    """conv(x with K one-hot class planes beside its C channels), stride 2, padding 1, computed without
    the planes: a one-hot plane's response is the conv of a plane of ones with that class's kernel, one
    (out, H/2, W/2) map per class, so D's first layer costs the same for 10 classes or 1,000."""
    c, k = x.shape[1], weight.shape[1] - x.shape[1]
    h = F.conv2d(x, weight[:, :c], None, 2, 1)
    if y is None:  # no class: all planes zero
        return h
    kernels = weight[:, c:].transpose(0, 1).reshape(-1, 1, *weight.shape[2:])  # (K * out, 1, kh, kw)
    maps = F.conv2d(x.new_ones(1, 1, *x.shape[2:]), kernels, None, 2, 1).view(k, weight.shape[0], *h.shape[2:])
    return h + maps.index_select(0, y)  # not maps[y]: its backward (index_put_ with accumulate) is not deterministic on a multi-threaded CPU


class DCGANDiscriminator(Projection, ClassHead, nn.Module):
    """image (N, C, size, size) [and class labels y (N,) when conditional] -> logit (N,).

    Conditional: d_condition=input puts one-hot class planes beside the image (the default: with the
    projection head instead, the conditional DCGAN collapsed to one image per class on MNIST, see
    docs/results.md); d_condition=projection adds <embed(y), pooled features> to the logit (Miyato & Koyama).
    class_head: an auxiliary classifier on the last features besides (ClassHead).
    """

    def __init__(self, channels: int, size: int, width: int, dropout: float = 0.0,
                 spectral_norm: bool = False, norm: Norm = "batch", minibatch_std: bool = False,
                 n_classes: int = 0, d_condition: DCondition = "input", class_head: bool = False):
        super().__init__()
        self.planes = ClassPlanes(n_classes) if n_classes and d_condition == "input" else None
        channels += n_classes if self.planes else 0
        ch = list(reversed(_channels(size, width)))  # e.g. 64 px: [w, 2w, 4w, 8w]

        def act() -> list[nn.Module]:
            return [nn.LeakyReLU(0.2, True)] + ([nn.Dropout(dropout)] if dropout > 0 else [])

        # (N, C, size, size) -> (N, w, size/2, size/2): no norm on the first layer
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(channels, ch[0], 4, 2, 1, bias=False), spectral_norm), *act()]
        for c_in, c_out in zip(ch, ch[1:]):  # each halves H and W, doubles channels
            layers += [maybe_sn(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), spectral_norm),
                       d_norm_layer(norm, c_out, conv=True), *act()]
        if minibatch_std:  # (N, ch[-1], base, base) -> (N, ch[-1] + 1, base, base)
            layers.append(MinibatchStd())
        # (N, ch[-1] (+1), base, base) -> (N, 1, 1, 1)
        layers.append(maybe_sn(nn.Conv2d(ch[-1] + minibatch_std, 1, SIZES[size], 1, 0, bias=False), spectral_norm))
        self.net = nn.Sequential(*layers)
        self.init_projection(n_classes if d_condition == "projection" else 0, ch[-1] + minibatch_std, spectral_norm)
        self.init_class_head(n_classes, ch[-1] + minibatch_std, class_head)

    def first_layer(self, x: Tensor, y: Tensor | None) -> Tensor:
        """D's first conv on the image with its class planes (ClassPlanes), the planes never built."""
        return plane_conv(x, y, self.net[0].weight)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if self.planes is not None and self.class_head is None:
            return self.net[1:](self.first_layer(x, y)).view(-1)
        if self.embed is None and self.class_head is None:
            return self.net(x).view(-1)
        # the last feature map, (N, F, base, base)
        h = self.net[1:-1](self.first_layer(x, y)) if self.planes is not None else self.net[:-1](x)
        self.read_class(h, y)
        logit = self.net[-1](h).view(-1)
        return logit if self.embed is None else logit + self.project(h.sum((2, 3)), y)


def make(data_shape: Sequence[int], latent_dim: int = 100, width: int | Literal["auto"] = 64, d_dropout: float = 0.0,
         spectral_norm: bool = False, d_norm: Norm = "batch", toy_hidden: Sequence[int] = (500, 500),
         pack: int = 1, minibatch_std: bool = False, conditional: Conditional = False,
         n_classes: int = 0, latent: Latent = "gaussian", d_condition: DCondition = "input",
         g_width: int | None = None, class_head: bool = False) -> tuple[nn.Module, nn.Module]:
    """Build (G, D) for images of `data_shape` (C, H, W); toy points get MLPs with `toy_hidden` units.

    width: G's last and D's first feature maps (auto: auto_width's, from the image size and channels);
    g_width: G's own, when G should be narrower or wider than D (None: width for both).
    pack = m > 1: D sees m samples at once (PacGAN); minibatch_std: D gets the batch's spread as a feature.
    conditional: G gets a class embedding beside z; D one-hot class planes beside the image (d_condition=input)
    or a projection term (d_condition=projection); n_classes comes from the dataset. class_head: D also reads
    the class (an auxiliary classifier, set by train.aux_classifier).
    """
    if len(data_shape) == 1:
        if g_width is not None:
            raise ValueError(f"model.g_width={g_width} sizes a DCGAN on images; the 2-D toy sets' MLP pair takes "
                             "model.toy_hidden instead")
        if class_head:
            raise ValueError("train.aux_classifier reads the class of images; the 2-D toy sets' MLP pair has no "
                             "class head (set train.aux_classifier=0)")
        return mlp.make(data_shape, latent_dim, toy_hidden, d_dropout, spectral_norm, "none", pack, minibatch_std,
                        conditional, n_classes, latent)
    n_classes = check_conditional(conditional, n_classes, pack)
    check_latent(latent)
    check_d_condition(d_condition)
    if pack < 1:
        raise ValueError(f"model.pack={pack}: must be >= 1 (1: no packing)")
    channels, height, width_px = data_shape
    check_size(height, width_px)
    if width == "auto":
        width = auto_width(data_shape)
    if not isinstance(width, int):
        raise ValueError(f"model.width={width}: use a number of channels such as 64, or auto")
    g_width = width if g_width is None else g_width
    if latent_dim < 1 or width < 1 or not isinstance(g_width, int) or g_width < 1:
        raise ValueError(f"model: latent_dim={latent_dim}, width={width} and g_width={g_width} must be whole "
                         f"numbers >= 1 (g_width: null for G as wide as D)")
    if not 0.0 <= d_dropout < 1.0:
        raise ValueError(f"model.d_dropout={d_dropout}: must be in [0, 1)")
    G = DCGANGenerator(channels, height, latent_dim, g_width, n_classes, latent)
    D = DCGANDiscriminator(channels * pack, height, width, d_dropout, spectral_norm, d_norm, minibatch_std, n_classes,
                           d_condition, class_head)
    dcgan_init(G)
    dcgan_init(D)
    return G, (Packed(D, pack) if pack > 1 else D)
