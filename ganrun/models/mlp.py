"""Fully connected G and D: the classic MLP GAN, for images (tanh output) and 2-D toy sets (linear)."""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from ganrun.models.common import (
    ClassInput,
    Conditional,
    Latent,
    MinibatchStd,
    Norm,
    Packed,
    Projection,
    check_conditional,
    check_latent,
    d_norm_layer,
    dcgan_init,
    maybe_sn,
)


class MLPGenerator(ClassInput, nn.Module):
    """z (N, latent_dim) [and class labels y (N,) when conditional] -> hidden ReLU layers -> data of
    `data_shape`; tanh for images, linear for points. `latent`: z's prior (see common.noise)."""

    def __init__(self, data_shape: Sequence[int], latent_dim: int, hidden: Sequence[int], n_classes: int = 0,
                 latent: Latent = "gaussian"):
        super().__init__()
        self.latent_dim = latent_dim
        self.latent = latent
        self.data_shape = tuple(data_shape)
        self.init_classes(n_classes)
        layers: list[nn.Module] = []
        width = latent_dim + self.class_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, math.prod(data_shape)))
        if len(data_shape) == 3:  # images live in [-1, 1]; toy points are unbounded
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(self.with_class(z, y)).view(z.shape[0], *self.data_shape)


class MLPDiscriminator(Projection, nn.Module):
    """data [and class labels y (N,) when conditional] -> flatten -> hidden LeakyReLU(0.2) layers
    (optional norm, dropout, spectral norm) -> logit (N,)."""

    def __init__(self, data_shape: Sequence[int], hidden: Sequence[int], dropout: float = 0.0,
                 spectral_norm: bool = False, norm: Norm = "none", minibatch_std: bool = False,
                 n_classes: int = 0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(data_shape)
        for i, h in enumerate(hidden):
            layers.append(maybe_sn(nn.Linear(width, h), spectral_norm))
            if i > 0:  # as in DCGAN, the first layer sees the data unnormalised
                layers.append(d_norm_layer(norm, h, conv=False))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        if minibatch_std:
            layers.append(MinibatchStd())
        layers.append(maybe_sn(nn.Linear(width + minibatch_std, 1), spectral_norm))
        self.net = nn.Sequential(*layers)
        self.init_projection(n_classes, width + minibatch_std, spectral_norm)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if self.embed is None:
            return self.net(x).view(-1)
        h = self.net[:-1](x)  # the last hidden features, (N, F)
        return self.net[-1](h).view(-1) + self.project(h, y)


def make(data_shape: Sequence[int], latent_dim: int = 100, hidden: Sequence[int] = (500, 500),
         d_dropout: float = 0.0, spectral_norm: bool = False, d_norm: Norm = "none", pack: int = 1,
         minibatch_std: bool = False, conditional: Conditional = False, n_classes: int = 0,
         latent: Latent = "gaussian") -> tuple[nn.Module, nn.Module]:
    """Build (G, D) MLPs for data of `data_shape` (C, H, W) images or (d,) points (1-D or 2-D toy sets).

    pack = m > 1: D sees m samples at once (PacGAN); minibatch_std: D gets the batch's spread as a feature.
    conditional: G gets a class embedding beside z, D a projection term (n_classes from the dataset).
    """
    n_classes = check_conditional(conditional, n_classes, pack)
    check_latent(latent)
    if latent_dim < 1 or not hidden or min(hidden) < 1:
        raise ValueError(f"model: latent_dim={latent_dim} and hidden={list(hidden)} must be positive and non-empty")
    if not 0.0 <= d_dropout < 1.0:
        raise ValueError(f"model.d_dropout={d_dropout}: must be in [0, 1)")
    if pack < 1:
        raise ValueError(f"model.pack={pack}: must be >= 1 (1: no packing)")
    G = MLPGenerator(data_shape, latent_dim, hidden, n_classes, latent)
    d_shape = (data_shape[0] * pack, *data_shape[1:])
    D = MLPDiscriminator(d_shape, list(reversed(hidden)), d_dropout, spectral_norm, d_norm, minibatch_std, n_classes)
    if len(data_shape) == 3:
        dcgan_init(G)
        dcgan_init(D)
    return G, (Packed(D, pack) if pack > 1 else D)
