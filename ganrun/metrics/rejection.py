"""Discriminator rejection sampling (DRS; Azadi et al., ICLR 2019): D's verdict filters G's samples.

For the sigmoid GAN losses (gan, minimax) the optimal discriminator is D*(x) = p_data / (p_data + p_g),
so its logit is log(p_data(x) / p_g(x)). Rejection sampling with proposal p_g then draws exactly from
p_data: keep x ~ G with probability exp(logit(x) - M), where M bounds the logit. A trained D is only
near-optimal, but the correction it makes is the one a GAN needs: samples between modes (where
p_g > p_data) are rejected and under-filled modes (p_data > p_g) are kept more often.

M is the largest logit seen so far (as in the paper): it starts as the maximum over a first pool of
proposals (scored, then dropped) and rises when a later proposal beats it. A cap bounds it: on the
first pool, M may not push the expected acceptance rate below 1 / budget. A D that rates a rare
corner of G's output thousands of times above the rest would otherwise make almost every proposal
fail; with the cap, proposals above M are all kept (the density ratio clipped at e^M) and the
expected cost stays at `budget` proposals per sample. Should 3 x budget proposals per sample still
not give n samples, the rest are the rejected proposals D rated most real, and the caller is told.

PacGAN packing (model.pack = m): D's logit then estimates the log ratio of m independent samples
together, log prod p_data(x_i) / p_g(x_i), so a pack is kept or dropped whole and the kept packs are
draws of m independent samples from p_data. Minibatch standard deviation (model.minibatch_std) adds
the spread of the scored chunk as a feature just before D's last, linear layer: a constant shift of
every logit in a chunk of 10,000, which the bound M absorbs.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from ganrun.models.common import Packed, eval_mode, noise

log = logging.getLogger(__name__)

CHUNK = 10_000  # proposals per round
BUDGET = 200  # expected proposals per kept sample at most (sets the cap on M)


def bound_cap(logit: Tensor, budget: float) -> float:
    """The largest M whose acceptance rate mean(min(1, exp(logit - M))) on these logits is >= 1 / budget."""
    logit = logit.double()
    lo, hi = float(logit.min()), float(logit.max())
    if float(torch.exp(logit - hi).mean()) >= 1 / budget:
        return hi
    for _ in range(60):  # bisection: the rate falls as M rises
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(torch.exp(logit - mid).clamp(max=1).mean()) >= 1 / budget else (lo, mid)
    return lo


def check(loss: Any, model_cfg: Any) -> None:
    """A ConfigError unless D's logit estimates log(p_data / p_g) (see ganrun.config.validate.check_drs)."""
    from ganrun.config.validate import check_drs

    check_drs(loss, model_cfg)


@torch.no_grad()
def sample(G: nn.Module, D: nn.Module, n: int, generator: torch.Generator,
           budget: int = BUDGET, classes: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """n samples of G (on the CPU) kept by D's rejection test, and {accept_rate, filled}: see draw."""
    x, _, info = draw(G, D, n, generator, budget, classes)
    return x, info


@torch.no_grad()
def draw(G: nn.Module, D: nn.Module, n: int, generator: torch.Generator, budget: int = BUDGET,
         classes: Tensor | None = None) -> tuple[Tensor, Tensor | None, dict[str, float]]:
    """n samples of G (on the CPU) kept by D's rejection test, the class input each was drawn with (None for
    an unconditional G), and {accept_rate, filled}: the share of proposals kept, and how many samples came
    from the fallback when 3 * n * budget proposals ran out. classes: for a conditional G, the class inputs
    the proposals draw from (each picks one at random), so the kept samples come in their mix; without
    them, every class in turn."""
    device = next(G.parameters()).device
    pack = D.m if isinstance(D, Packed) else 1  # PacGAN: one logit per pack of m samples, kept or dropped whole
    chunk = CHUNK - CHUNK % pack
    first_pool = min(max(10 * n, chunk), 100_000)  # scored only: sets the first M and its cap
    first_pool -= first_pool % pack

    n_classes = G.n_classes

    def propose(m: int) -> tuple[Tensor, Tensor, Tensor]:
        """m samples, the logit of the pack each belongs to (its own logit when pack = 1) and each one's class
        input (-1 for an unconditional G). A conditional G's D saw fakes of the data's classes in training, so
        its logit estimates log p_data(x|y) / p_g(x|y) and the kept samples of class y follow p_data(x|y), in
        the mix of classes the proposals have."""
        z = noise(G, m, generator=generator).to(device)
        if n_classes:
            y = torch.arange(m) % n_classes if classes is None else \
                classes[torch.randint(len(classes), (m,), generator=generator)]
            y = y.to(device)
            x = torch.cat([G(c, k) for c, k in zip(z.split(chunk), y.split(chunk))])
            logit = torch.cat([D(c, k) for c, k in zip(x.split(chunk), y.split(chunk))]).float()
            return x.float().cpu(), logit.cpu(), y.cpu()
        x = torch.cat([G(c) for c in z.split(chunk)])
        logit = torch.cat([D(c).reshape(len(c) // pack, -1)[:, 0] for c in x.split(chunk)]).float()
        return x.float().cpu(), logit.cpu().repeat_interleave(pack), torch.full((m,), -1)

    kept: list[tuple[Tensor, Tensor]] = []
    n_kept = drawn = 0
    reserve = (torch.empty(0), torch.empty(0, dtype=torch.long))  # the best rejected proposals and their classes
    reserve_logit = torch.empty(0)
    with eval_mode(G), eval_mode(D):
        first = torch.cat([propose(min(chunk, first_pool - i))[1] for i in range(0, first_pool, chunk)])
        cap = bound_cap(first, budget)  # set on proposals that are not kept: M does not depend on them
        bound = min(float(first.max()), cap)
        while n_kept < n and drawn < 3 * n * budget:
            x, logit, y = propose(chunk)
            drawn += len(x)
            bound = min(max(bound, float(logit.max())), cap)
            u = torch.rand(len(x) // pack, generator=generator).repeat_interleave(pack)
            keep = u.log() < logit - bound  # u < exp(logit - M)
            kept.append((x[keep], y[keep]))
            n_kept += int(keep.sum())
            pool = [torch.cat([r, new[~keep]]) if len(r) else new[~keep] for r, new in zip(reserve, (x, y))]
            pool_logit = torch.cat([reserve_logit, logit[~keep]])
            best = pool_logit.topk(min(n, len(pool_logit))).indices
            reserve, reserve_logit = (pool[0][best], pool[1][best]), pool_logit[best]
    out, out_y = (torch.cat(part)[:n] for part in zip(*kept))
    filled = n - len(out)
    if filled:
        log.warning("DRS kept %d of %d samples from %d proposals; the other %d are the proposals D rated most "
                    "real", len(out), n, drawn, filled)
        out, out_y = torch.cat([out, reserve[0][:filled]]), torch.cat([out_y, reserve[1][:filled]])
    return out, (out_y if n_classes else None), {"accept_rate": n_kept / drawn, "filled": float(filled)}
