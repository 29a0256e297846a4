"""A VAE baseline (Kingma & Welling 2014) built from the GAN architectures, so GANs and a VAE share
one runner, one sampler and one set of metrics.

The decoder *is* a generator (z -> x, the same class as the GAN's G), so `ganrun sample`, `eval`
and `export` use it unchanged; the encoder takes the discriminator's place (and its checkpoint
slot): D's trunk with a linear head giving the mean and log-variance of q(z | x). The training
step (loop.vae_step) maximises the ELBO (losses.ELBO) through both networks at once.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from ganrun.losses import ELBO
from ganrun.models import dcgan, mlp
from ganrun.models.common import Norm, dcgan_init


class Encoder(nn.Module):
    """x -> (mu, logvar) of q(z | x), each (N, latent_dim): a feature trunk and a linear head."""

    def __init__(self, trunk: nn.Module, features: int, latent_dim: int, elbo: ELBO):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(features, 2 * latent_dim)
        self.latent_dim = latent_dim
        self.elbo = elbo  # the objective's settings (beta, sigma) travel with the model config

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.head(self.trunk(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)  # exp(logvar) stays finite


def make(data_shape: Sequence[int], arch: Literal["conv", "mlp"] = "conv", latent_dim: int = 32,
         width: int = 64, hidden: Sequence[int] = (500, 500), d_norm: Norm = "batch", beta: float = 1.0,
         recon_sigma: float = 0.6, conditional: bool = False, n_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    """(decoder, encoder) for data of `data_shape`: arch=conv mirrors DCGAN (28, 32 or 64 px images),
    arch=mlp is fully connected (images or toy points; points always get it). d_norm: the encoder's
    normalisation (batch, layer or none). beta, recon_sigma: see losses.ELBO."""
    if conditional:
        raise ValueError("model=vae is unconditional; drop model.conditional=true")
    if arch not in ("conv", "mlp"):
        raise ValueError(f"model.arch={arch}: use conv or mlp")
    if latent_dim < 1:
        raise ValueError(f"model.latent_dim={latent_dim}: must be >= 1")
    elbo = ELBO(beta, recon_sigma)
    if arch == "mlp" or len(data_shape) == 1:
        decoder, critic = mlp.make(data_shape, latent_dim, hidden, d_norm=d_norm)
        trunk, features = critic.net[:-1], list(reversed(hidden))[-1]  # all but D's logit layer
    else:
        decoder, critic = dcgan.make(data_shape, latent_dim, width, d_norm=d_norm)
        trunk = critic.net[:-1]  # D's conv stack: (N, C, H, W) -> (N, F, base, base)
        with torch.no_grad():
            features = math.prod(trunk(torch.zeros(2, *data_shape)).shape[1:])
    encoder = Encoder(trunk, features, latent_dim, elbo)
    if len(data_shape) == 3:
        dcgan_init(encoder.head)
    return decoder, encoder
