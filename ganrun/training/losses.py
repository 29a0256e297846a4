"""GAN losses: the logit math of each one, nothing else.

Sign convention, stated once: D returns *logits*, one real number per sample, and higher means
"more real". For the probability losses (gan, minimax) D(x) = sigmoid(logit); for the others the
logit is the critic's raw score. Every method returns a quantity to *minimise*.

Interface (an adversarial objective, ganrun.training.objectives, calls nothing else):
    d_loss(real_logits, fake_logits)            -> scalar tensor, D's loss
    g_loss(fake_logits, real_logits=None)        -> scalar tensor, G's loss (real_logits: for the
                                                    relativistic losses, whose `paired` is True)
    stats(real_logits, fake_logits)             -> dict of scalar tensors for logging (no host sync here)
    probability                                 -> whether sigmoid(logit) is D's probability

Penalties, constraints and G-update variants (gradient penalty, R1, weight clipping, unrolling, top-k,
...) are not part of a loss: they are regularizers (ganrun.training.regularizers), a list picked in
config beside the loss. The VAE baseline's objective (model=vae) is ganrun.models.vae.ELBO.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor



def _check_label(real_label: float, flip_prob: float) -> None:
    if not 0.0 < real_label <= 1.0:
        raise ValueError(f"loss.real_label={real_label}: must be in (0, 1]; 0.9 is the usual one-sided smoothing")
    if not 0.0 <= flip_prob < 0.5:
        raise ValueError(f"loss.flip_prob={flip_prob}: must be in [0, 0.5); try 0.05")


def _targets(logits: Tensor, value: float, flip_to: float, flip_prob: float) -> Tensor:
    """D's target for each sample: `value`, or `flip_to` for a random `flip_prob` share (label noise)."""
    target = torch.full_like(logits, value)
    if flip_prob > 0:
        flip = torch.rand_like(logits) < flip_prob
        target = torch.where(flip, torch.full_like(logits, flip_to), target)
    return target


class Loss:
    """Base class: raw critic means as stats; no regularizer, plain G updates."""

    probability = False  # True when sigmoid(D's logit) is D's probability that x is real
    paired = False  # True when G's loss compares each fake with a real sample (relativistic losses)

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        raise NotImplementedError


    @torch.no_grad()
    def stats(self, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
        """Mean D outputs on real and fake data, for logging."""
        return {"D/real": real_logits.mean(), "D/fake": fake_logits.mean()}


class _Labelled(Loss):
    """The losses that regress D's output on real/fake labels: one-sided smoothing (real_label < 1,
    fake targets stay 0) and label noise (flip_prob: a random share of targets swapped)."""

    def __init__(self, real_label: float = 1.0, flip_prob: float = 0.0):
        _check_label(real_label, flip_prob)
        self.real_label = real_label
        self.flip_prob = flip_prob

    def targets(self, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
        """D's targets for the real and the fake batch."""
        real_t = _targets(real_logits, self.real_label, 0.0, self.flip_prob)
        fake_t = _targets(fake_logits, 0.0, self.real_label, self.flip_prob)
        return real_t, fake_t


class _ProbabilityLoss(_Labelled):
    """Shared D side of the losses where D(x) = sigmoid(logit) is a probability of "real".

    d_loss = BCE(real, real_label) + BCE(fake, 0); with real_label = 1 and no flips this is
    -[E log D(x) + E log(1 - D(G(z)))] = -V(D, G), so minimising it is D maximising V.
    real_label < 1 is one-sided label smoothing (fake targets stay 0); flip_prob swaps a random
    share of real and fake targets (noisy labels).
    """

    probability = True

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        real_t, fake_t = self.targets(real_logits, fake_logits)
        return (F.binary_cross_entropy_with_logits(real_logits, real_t)
                + F.binary_cross_entropy_with_logits(fake_logits, fake_t))

    @torch.no_grad()
    def stats(self, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
        return {"D(x)": torch.sigmoid(real_logits).mean(), "D(G(z))": torch.sigmoid(fake_logits).mean()}


class NonSaturating(_ProbabilityLoss):
    """The usual GAN: G maximises log D(G(z)), i.e. minimises -E log sigmoid(fake_logit)."""

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return F.softplus(-fake_logits).mean()  # -log sigmoid(l) = softplus(-l)


class Minimax(_ProbabilityLoss):
    """The original saturating game: G minimises E log(1 - D(G(z)))."""

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(l)) = -softplus(l)


class Wasserstein(Loss):
    """WGAN critic loss E[C(G(z))] - E[C(x)]; G minimises -E[C(G(z))]. The critic must be kept
    1-Lipschitz by a regularizer beside it: weight clipping (loss=wgan picks regularizers=[clip]), the
    gradient penalty (loss=wgan-gp picks [gp]) or spectral normalisation (model.spectral_norm=true)."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.mean() - real_logits.mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()


    @torch.no_grad()
    def stats(self, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
        real, fake = real_logits.mean(), fake_logits.mean()
        # E[C(x)] - E[C(G(z))] estimates the Wasserstein-1 distance (up to C's Lipschitz constant)
        return {"critic/real": real, "critic/fake": fake, "critic/wasserstein": real - fake}


class Hinge(Loss):
    """Hinge loss (Geometric GAN / SN-GAN): D minimises E[relu(1 - C(x))] + E[relu(1 + C(G(z)))];
    G minimises -E[C(G(z))]."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()


class LeastSquares(_Labelled):
    """LSGAN with the 0-1 coding a=0 (fake), b=1 (real), c=1 (what G wants D to say):
    D minimises 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]; G minimises 1/2 E[(D(G(z)) - c)^2].
    real_label sets b (one-sided smoothing); flip_prob swaps a random share of targets."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        real_t, fake_t = self.targets(real_logits, fake_logits)
        return 0.5 * ((real_logits - real_t).pow(2).mean() + (fake_logits - fake_t).pow(2).mean())

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return 0.5 * (fake_logits - 1).pow(2).mean()


class RelativisticPairing(Loss):
    """RpGAN (Jolicoeur-Martineau 2019; the loss of R3GAN, Huang et al. 2024): each fake is judged
    against a real sample of the same batch. D minimises E softplus(D(G(z_i)) - D(x_i)); G minimises
    E softplus(D(x_i) - D(G(z_i))). R3GAN adds R1 and R2 (regularizers=[r1,r2])."""

    paired = True

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.softplus(fake_logits - real_logits).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if real_logits is None:
            raise ValueError("the relativistic pairing loss compares each fake with a real sample: pass real_logits")
        return F.softplus(real_logits - fake_logits).mean()
