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

from ganrun.models import dcgan, mlp
from ganrun.models.common import Norm, dcgan_init



class ELBO:
    """The VAE's objective (Kingma & Welling 2014), per sample, in nats: minimise
    -ELBO = E_q[-log p(x | z)] + beta * KL(q(z | x) || N(0, I)).

    q(z | x) = N(mu, diag(exp(logvar))): KL = 1/2 sum(mu^2 + exp(logvar) - 1 - logvar).
    p(x | z) = N(x_hat, sigma^2 I) over the D data dimensions: -log p = ||x - x_hat||^2 / (2 sigma^2)
    + D/2 log(2 pi sigma^2). recon_sigma > 0 fixes sigma; 0 sets it to the batch's RMS error (the
    sigma that maximises the likelihood, held constant in the gradient: a calibrated decoder, so the
    balance between the two terms needs no tuning).
    """

    def __init__(self, beta: float = 1.0, recon_sigma: float = 0.0):
        if beta < 0 or recon_sigma < 0:
            raise ValueError(f"model.beta={beta}, model.recon_sigma={recon_sigma}: must be >= 0")
        self.beta = beta
        self.recon_sigma = recon_sigma

    @staticmethod
    def kl(mu: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(mu, exp(logvar)) || N(0, I)) per sample, (N,)."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(dim=1)

    def recon_nll(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """-log p(x | z) per sample, (N,), under the Gaussian decoder."""
        sq = (x - x_hat).pow(2).flatten(1)
        var = (torch.full((), self.recon_sigma ** 2, device=x.device) if self.recon_sigma > 0
               else sq.mean().detach().clamp(min=1e-6))
        dims = sq.shape[1]
        return sq.sum(dim=1) / (2 * var) + 0.5 * dims * torch.log(2 * math.pi * var)

    def __call__(self, x: Tensor, x_hat: Tensor, mu: Tensor, logvar: Tensor) -> dict[str, Tensor]:
        """{"loss": mean -ELBO (beta-weighted), "recon": mean -log p(x|z), "kl": mean KL}."""
        recon, kl = self.recon_nll(x, x_hat).mean(), self.kl(mu, logvar).mean()
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}


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


make.has_discriminator = False  # its second network is an encoder (ganrun.config.validate.has_discriminator)
