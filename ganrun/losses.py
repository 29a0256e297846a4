"""GAN losses: the logit math of each one, nothing else.

Sign convention, stated once: D returns *logits*, one real number per sample, and higher means
"more real". For the probability losses (gan, minimax) D(x) = sigmoid(logit); for the others the
logit is the critic's raw score. Every method returns a quantity to *minimise*.

Interface (an adversarial objective, ganrun.objectives, calls nothing else):
    d_loss(real_logits, fake_logits)            -> scalar tensor, D's loss
    g_loss(fake_logits, real_logits=None)        -> scalar tensor, G's loss (real_logits: for the
                                                    relativistic losses, whose `paired` is True)
    stats(real_logits, fake_logits)             -> dict of scalar tensors for logging (no host sync here)
    probability                                 -> whether sigmoid(logit) is D's probability
    components()                                -> (regularizers, G-update) the loss config turns on:
                                                    penalties and constraints for D (ganrun.regularizers),
                                                    unrolling and top-k selection for G (ganrun.objectives)

The loss config carries the keys of those components (r1_gamma, gp_weight, unroll_steps, ...), so
`loss.r1_gamma=1.0` works on every loss that takes it; the objects themselves live elsewhere.
ELBO, at the end, is the VAE baseline's objective (model=vae), not a GAN loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ganrun.regularizers import DRAGAN, R1, R2, GradientPenalty, LeCam, Regularizer, WeightClip
from ganrun.updates import GUpdate


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

    def components(self) -> tuple[list[Regularizer], GUpdate]:
        """The D regularizers and the G-update variant this loss's config turns on."""
        return [], GUpdate()

    @torch.no_grad()
    def stats(self, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
        """Mean D outputs on real and fake data, for logging."""
        return {"D/real": real_logits.mean(), "D/fake": fake_logits.mean()}


class _Regularised(Loss):
    """The keys of the optional components for the non-Wasserstein losses:

    r1_gamma > 0: R1 (Mescheder et al. 2018), r1_gamma / 2 * E ||grad D(x)||^2 on real data.
    r2_gamma > 0: R2, r2_gamma / 2 * E ||grad D(G(z))||^2 on the fakes (R3GAN pairs it with R1).
    dragan_weight > 0: DRAGAN (Kodali et al. 2017), dragan_weight * E (||grad D(x~)|| - 1)^2 on real
    data perturbed by x~ = x + 0.5 * std(x) * u, u ~ U[0, 1) per element.
    unroll_steps = k > 0: Unrolled GAN (Metz et al. 2017), G's loss is taken against D after k
    differentiable gradient steps on D's loss (objectives.unrolled_critic); D itself is not changed.
    lecam_weight > 0: LeCam regularization (Tseng et al. 2021) on D's outputs (regularizers.LeCam).
    top_k = nu < 1: top-k training (Sinha et al. 2020), G's loss uses only the share of each fake
    batch that D rates most real; the share falls linearly from 1 to nu over the first half of
    training (objectives.top_k_share) and stays there.
    """

    def __init__(self, r1_gamma: float = 0.0, dragan_weight: float = 0.0, unroll_steps: int = 0,
                 top_k: float = 1.0, r2_gamma: float = 0.0, lecam_weight: float = 0.0):
        if r1_gamma < 0 or dragan_weight < 0 or r2_gamma < 0 or lecam_weight < 0:
            raise ValueError(f"loss.r1_gamma={r1_gamma}, loss.r2_gamma={r2_gamma}, loss.dragan_weight={dragan_weight}, "
                             f"loss.lecam_weight={lecam_weight}: must be >= 0")
        if unroll_steps < 0:
            raise ValueError(f"loss.unroll_steps={unroll_steps}: must be >= 0 (0: off; the paper uses 5 to 10)")
        if not 0.0 < top_k <= 1.0:
            raise ValueError(f"loss.top_k={top_k}: the share of fakes kept, in (0, 1] (1: off; 0.5 to 0.75 in the paper)")
        if top_k < 1.0 and self.paired:
            raise ValueError(f"loss.top_k={top_k}: top-k training drops fakes, which a paired (relativistic) "
                             f"loss compares with real samples one to one; leave loss.top_k=1")
        self.r1_gamma = r1_gamma
        self.r2_gamma = r2_gamma
        self.dragan_weight = dragan_weight
        self.lecam_weight = lecam_weight
        self.unroll_steps = unroll_steps
        self.top_k = top_k

    def components(self) -> tuple[list[Regularizer], GUpdate]:
        regs: list[Regularizer] = []
        if self.r1_gamma > 0:
            regs.append(R1(self.r1_gamma))
        if self.r2_gamma > 0:
            regs.append(R2(self.r2_gamma))
        if self.dragan_weight > 0:
            regs.append(DRAGAN(self.dragan_weight))
        if self.lecam_weight > 0:
            regs.append(LeCam(self.lecam_weight))
        return regs, GUpdate(self.unroll_steps, self.top_k)


class _Labelled(_Regularised):
    """The losses that regress D's output on real/fake labels: one-sided smoothing (real_label < 1,
    fake targets stay 0) and label noise (flip_prob: a random share of targets swapped)."""

    def __init__(self, real_label: float = 1.0, flip_prob: float = 0.0, r1_gamma: float = 0.0,
                 dragan_weight: float = 0.0, unroll_steps: int = 0, top_k: float = 1.0, r2_gamma: float = 0.0,
                 lecam_weight: float = 0.0):
        super().__init__(r1_gamma, dragan_weight, unroll_steps, top_k, r2_gamma, lecam_weight)
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
    """WGAN critic loss E[C(G(z))] - E[C(x)]; G minimises -E[C(G(z))].

    clip > 0 clamps every critic parameter to [-clip, clip] after each critic step (the WGAN paper's
    way to keep C Lipschitz); clip = 0 leaves that to another constraint (GP or spectral norm).
    """

    def __init__(self, clip: float = 0.01):
        if clip < 0:
            raise ValueError(f"loss.clip={clip}: must be >= 0 (0 turns weight clipping off)")
        self.clip = clip

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.mean() - real_logits.mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()

    def components(self) -> tuple[list[Regularizer], GUpdate]:
        return [WeightClip(self.clip)] if self.clip > 0 else [], GUpdate()

    @torch.no_grad()
    def stats(self, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
        real, fake = real_logits.mean(), fake_logits.mean()
        # E[C(x)] - E[C(G(z))] estimates the Wasserstein-1 distance (up to C's Lipschitz constant)
        return {"critic/real": real, "critic/fake": fake, "critic/wasserstein": real - fake}


class WassersteinGP(Wasserstein):
    """WGAN-GP: the WGAN loss plus gp_weight * E[(||grad_x C(x_hat)||_2 - 1)^2] on random
    interpolates x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] per sample. No clipping."""

    def __init__(self, gp_weight: float = 10.0):
        super().__init__(clip=0.0)
        if gp_weight < 0:
            raise ValueError(f"loss.gp_weight={gp_weight}: must be >= 0 (the paper uses 10)")
        self.gp_weight = gp_weight

    def components(self) -> tuple[list[Regularizer], GUpdate]:
        return [GradientPenalty(self.gp_weight)], GUpdate()


class Hinge(_Regularised):
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


class RelativisticPairing(_Regularised):
    """RpGAN (Jolicoeur-Martineau 2019; the loss of R3GAN, Huang et al. 2024): each fake is judged
    against a real sample of the same batch. D minimises E softplus(D(G(z_i)) - D(x_i)); G minimises
    E softplus(D(x_i) - D(G(z_i))). R3GAN adds R1 and R2 (loss.r1_gamma, loss.r2_gamma)."""

    paired = True

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.softplus(fake_logits - real_logits).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if real_logits is None:
            raise ValueError("the relativistic pairing loss compares each fake with a real sample: pass real_logits")
        return F.softplus(real_logits - fake_logits).mean()


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
