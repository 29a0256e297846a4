"""Pieces shared by the architectures: normalisation choice, spectral norm, DCGAN init."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal, Union

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

Norm = Literal["batch", "layer", "none"]
Latent = Literal["gaussian", "uniform"]
DCondition = Literal["input", "projection"]
Conditional = Union[bool, Literal["auto"]]


def draw(shape: tuple[int, ...], prior: str = "gaussian", generator: torch.Generator | None = None,
         device: torch.device | str | None = None) -> Tensor:
    """Latent noise of `shape` from a prior: standard normal, or uniform on [-1, 1] (the original GAN
    paper's 1-D figure)."""
    if prior == "uniform":
        return torch.rand(shape, generator=generator, device=device).mul_(2).sub_(1)
    return torch.randn(shape, generator=generator, device=device)


def noise(G: nn.Module, n: int, device: torch.device | str | None = None,
          generator: torch.Generator | None = None) -> Tensor:
    """n latent vectors (n, G.latent_dim) from G's prior (G.latent)."""
    return draw((n, G.latent_dim), getattr(G, "latent", "gaussian"), generator, device)


def check_latent(latent: str) -> None:
    if latent not in ("gaussian", "uniform"):
        raise ValueError(f"model.latent={latent}: use gaussian or uniform")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run a block with `module` in eval mode (BatchNorm running statistics, no dropout), then restore."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def d_norm_layer(kind: Norm, channels: int, conv: bool) -> nn.Module:
    """The normalisation after a hidden D layer: batch, layer (GroupNorm(1, C) for convs) or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if conv else nn.LayerNorm(channels)
    return nn.Identity()


def maybe_sn(layer: nn.Module, on: bool) -> nn.Module:
    """Wrap a conv/linear layer in spectral normalisation when `on`."""
    return nn.utils.parametrizations.spectral_norm(layer) if on else layer


def dcgan_init(module: nn.Module) -> None:
    """DCGAN init: conv/linear weights ~ N(0, 0.02); norm scales ~ N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # under spectral norm `weight` is computed; initialise the stored original instead
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Packed(nn.Module):
    """PacGAN packing: D judges m samples jointly, (N, C, ...) -> (N/m, m*C, ...), one logit per pack.

    Seeing several samples at once lets D notice when they are too alike, which penalises collapse.
    """

    def __init__(self, D: nn.Module, m: int):
        super().__init__()
        self.D, self.m = D, m

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] % self.m:
            raise ValueError(f"batch of {x.shape[0]} does not split into packs of model.pack={self.m}")
        return self.D(x.reshape(x.shape[0] // self.m, self.m * x.shape[1], *x.shape[2:]))


class MinibatchStd(nn.Module):
    """Appends one feature: the mean over features of the batch standard deviation (ProGAN's trick),
    so D can tell a batch of near-identical samples from a varied one."""

    def forward(self, x: Tensor) -> Tensor:
        std = x.float().std(dim=0, unbiased=False).mean().to(x.dtype)
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


# ---------------------------------------------------------------- conditional GANs

CLASS_DIM = 50  # size of G's class embedding, concatenated to z


def auto_conditional(n_classes: int, pack: int = 1, drs: bool = False, pixels: bool = True) -> bool:
    """model.conditional=auto, the one rule: conditional when the data are images with class labels (two or
    more) and D neither packs samples (PacGAN) nor filters them by rejection sampling, both of which need an
    unconditional G. (train.clusters makes a model conditional on its clusters: ganrun.models.build.)"""
    return pixels and n_classes >= 2 and pack == 1 and not drs


def check_conditional(conditional: Conditional, n_classes: int, pack: int) -> int:
    """The class count the models are built with: n_classes when conditional, else 0 (auto: auto_conditional)."""
    if conditional == "auto":
        return n_classes if auto_conditional(n_classes, pack) else 0
    if not conditional:
        return 0
    if n_classes < 2:
        raise ValueError("model.conditional=true needs a labelled dataset (mnist, mnist-sample, fashion-mnist, "
                         "cifar10, stacked-mnist; a folder or zip with one sub-folder per class, a zip with a "
                         "dataset.json of labels, an hf set with a label column), or train.clusters=K to "
                         "condition on K k-means clusters of the images")
    if pack > 1:
        raise ValueError("model.conditional=true does not combine with model.pack > 1; drop one of them")
    return n_classes


def asked_classes(G: nn.Module) -> int:
    """How many classes a user can ask G for: its class inputs, or for a G trained on clusters within its
    set's labels (G.class_of, each cluster's class), the labels."""
    class_of = getattr(G, "class_of", None)
    return int(class_of.max()) + 1 if class_of is not None else G.n_classes


def class_inputs(G: nn.Module, asked: Tensor, seed: int = 0) -> Tensor:
    """G's class inputs for the classes asked for: the classes themselves, or for a G trained on clusters
    within its labels, for each sample one of its class's clusters at random (equally likely, as the clusters
    within a class are of one size). Sample i's draw depends on (seed, i, its class) alone, so a row of a
    grid shows the same images whatever the other rows ask for."""
    class_of = getattr(G, "class_of", None)
    if class_of is None:
        return asked
    wanted = asked.cpu()
    counts = torch.bincount(class_of, minlength=int(wanted.max()) + 1)  # clusters of each class
    first = torch.cumsum(counts, 0) - counts  # where each class's clusters start in class order
    u = torch.rand(len(wanted), generator=torch.Generator().manual_seed(seed))
    pick = (u * counts[wanted]).long().clamp(max=counts[wanted] - 1)
    return torch.argsort(class_of, stable=True)[first[wanted] + pick].to(asked.device)


class ClassInput:
    """Mixin for a conditional G: a learned class embedding (N(0, 1) init, like z) is concatenated to z.
    Without labels, G draws the classes in turn (0, 1, ..., K-1, 0, ...), so code that only
    knows z (sampling, evaluation) gets every class equally often."""

    n_classes: int
    class_dim: int

    def init_classes(self, n_classes: int) -> None:
        self.n_classes = n_classes
        self.class_dim = CLASS_DIM if n_classes else 0
        self.embed = nn.Embedding(n_classes, CLASS_DIM) if n_classes else None

    def with_class(self, z: Tensor, y: Tensor | None) -> Tensor:
        if self.embed is None:
            return z
        if y is None:
            y = torch.arange(z.shape[0], device=z.device) % self.n_classes
        return torch.cat([z.flatten(1), self.embed(y).to(z.dtype)], dim=1)


def check_d_condition(d_condition: str) -> None:
    if d_condition not in ("input", "projection"):
        raise ValueError(f"model.d_condition={d_condition}: use input (one-hot class planes beside the image) "
                         f"or projection (the projection discriminator)")


class ClassPlanes(nn.Module):
    """A conditional D's input (Mirza & Osindero 2014's conditioning): the image with K one-hot class planes
    beside its channels, (N, C, H, W) -> (N, C + K, H, W), so D judges image and class together from its
    first layer. Without labels the planes are zero (no class)."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        planes = x.new_zeros(x.shape[0], self.n_classes, *x.shape[2:])
        if y is not None:
            planes.scatter_(1, y.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:]), 1.0)
        return torch.cat([x, planes], dim=1)


class Projection:
    """Mixin for a conditional D: the projection discriminator (Miyato & Koyama 2018), logit =
    head(h) + <embed(y), h> on D's last features h. Without labels, D is unconditional."""

    embed: nn.Module | None

    def init_projection(self, n_classes: int, features: int, spectral_norm: bool) -> None:
        self.embed = None
        if n_classes:
            embed = nn.Embedding(n_classes, features)
            nn.init.normal_(embed.weight, 0.0, 0.02)
            self.embed = maybe_sn(embed, spectral_norm)

    def project(self, h: Tensor, y: Tensor | None) -> Tensor:
        if y is None:
            return h.new_zeros(h.shape[0])
        return (self.embed(y) * h.flatten(1)).sum(1)


class ClassHead:
    """Mixin for a conditional D: an auxiliary classifier (AC-GAN, Odena et al. 2017), a linear layer that reads
    the class from D's last features summed over positions, beside D's real-or-fake logit. Each forward with
    labels keeps its logits (N, K) in `class_logits`, for the objective to read right after the call
    (train.aux_classifier's term: regularizers.AuxClassifier); without labels, or without the head, None."""

    class_head: nn.Module | None
    class_logits: Tensor | None

    def init_class_head(self, n_classes: int, features: int, on: bool) -> None:
        if on and not n_classes:
            raise ValueError("train.aux_classifier: D's class head reads the class, so it needs a conditional "
                             "model (a labelled dataset, or train.clusters)")
        self.class_head = nn.Linear(features, n_classes) if on else None
        self.class_logits = None

    def read_class(self, h: Tensor, y: Tensor | None) -> None:
        """Keep the head's logits on D's last feature map h (N, F, H, W) for labels y."""
        self.class_logits = None if self.class_head is None or y is None else self.class_head(h.float().sum((2, 3)))
