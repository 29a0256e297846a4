"""fit(): n_critic D steps, then one G step; intervals for logging, samples and checkpoints.

The step returns tensors; only logging steps turn them into Python floats, because every
.item() waits for the GPU to finish (a host-device sync point).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ganrun import checkpoint, distributed, game1d, images, metrics
from ganrun.augment import unaugmented
from ganrun.evaluate import Evaluator
from ganrun.build import Experiment
from ganrun.losses import Loss
from ganrun.models.common import eval_mode, noise
from ganrun.models.vae import Encoder

log = logging.getLogger(__name__)

TOY_POINTS = metrics.TOY_SAMPLES  # points per plot (and evaluation) on the toy sets


class NonFiniteError(RuntimeError):
    """A loss or weight became NaN/inf; the last good checkpoint is kept."""


class Interrupted(RuntimeError):
    """SIGINT or SIGTERM arrived: the step in flight finished and a checkpoint was written."""

    def __init__(self, step: int, signum: int):
        super().__init__(f"stopped by signal {signal.Signals(signum).name} after step {step}; checkpoint saved")
        self.step = step


class StopFlag:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks between steps; a second one aborts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():  # signals can only be caught there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # the second signal: abort now
        self.signum = signum
        log.warning("%s: finishing this step and saving a checkpoint (send it again to abort at once)",
                    signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def grad_norm(module: nn.Module) -> Tensor:
    """The total L2 norm of a module's current gradients."""
    norms = [p.grad.norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


class Precision:
    """How the training step computes: "32" (plain float32), "bf16" (autocast to bfloat16) or "fp16"
    (autocast to float16 with a gradient scaler per network, so small gradients do not underflow;
    the scaler skips a step whose gradients overflowed and lowers its scale). Losses are taken on
    float32 logits. Under fp16, gradient penalties (WGAN-GP, R1, DRAGAN) run in float32: their double
    backward would need its own scaling to be safe in float16."""

    def __init__(self, mode: str = "32", device_type: str = "cpu"):
        self.mode = mode
        self.device_type = device_type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        self.scalers = ({"D": torch.amp.GradScaler(device_type), "G": torch.amp.GradScaler(device_type)}
                        if mode == "fp16" else {})

    def autocast(self, penalty: bool = False) -> Any:
        if self.dtype is None or (penalty and self.mode == "fp16"):
            return contextlib.nullcontext()  # float32: no autocast machinery on the hot path
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: Tensor, net: str) -> None:
        (self.scalers[net].scale(loss) if self.scalers else loss).backward()

    def unscale(self, opt: torch.optim.Optimizer, net: str) -> None:
        """Gradients back to their true size before they are measured (fp16 only)."""
        if self.scalers:
            self.scalers[net].unscale_(opt)

    def step(self, opt: torch.optim.Optimizer, net: str, *more: torch.optim.Optimizer) -> None:
        """Step `opt` (and `more`, optimizers whose gradients came from the same scaled loss)."""
        if self.scalers:
            for o in (opt, *more):
                self.scalers[net].step(o)
            self.scalers[net].update()
        else:
            for o in (opt, *more):
                o.step()

    def state_dict(self) -> dict[str, Any]:
        return {net: s.state_dict() for net, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for net, s in self.scalers.items():
            if net in state:
                s.load_state_dict(state[net])


FP32 = Precision()


def unrolled_critic(D: nn.Module, loss: Loss, real: Tensor, fake: Tensor, cond: tuple[Tensor, ...],
                    lr: float, steps: int) -> Callable[..., Tensor]:
    """D as it would be after `steps` plain gradient steps (rate lr, D's learning rate) on its loss
    against this real batch and these fakes, kept differentiable (create_graph), so G's gradient
    through it accounts for how D would answer G's move (Unrolled GAN, Metz et al. 2017). Works on
    copies of D's parameters; D's own weights and gradients are untouched. Buffers (BatchNorm running
    statistics) are D's own."""
    from torch.func import functional_call

    params = {name: p.detach().requires_grad_(True) for name, p in D.named_parameters()}
    for _ in range(steps):
        d_loss = loss.d_loss(functional_call(D, params, (real, *cond)).float(),
                             functional_call(D, params, (fake, *cond)).float())
        grads = torch.autograd.grad(d_loss, list(params.values()), create_graph=True)
        params = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    return lambda x, *labels: functional_call(D, params, (x, *labels))


def _split(batch: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor | None]:
    """(images, labels or None) from what a dataset's batches yield."""
    return batch if isinstance(batch, tuple) else (batch, None)


def train_step(G: nn.Module, D: nn.Module, loss: Loss, opt_G: torch.optim.Optimizer,
               opt_D: torch.optim.Optimizer, batches: Iterator[Tensor], n_critic: int,
               want_stats: bool, skip_nonfinite: bool = False, precision: Precision = FP32,
               sync: Callable[[nn.Module], None] | None = None) -> dict[str, Tensor]:
    """n_critic D updates then one G update; returns scalar tensors (stats only when want_stats).

    skip_nonfinite: an update whose loss is NaN/inf is skipped (counted in "skipped"); this checks
    the loss on the host every step, a sync the default path avoids. sync(module), when given, runs
    after each backward (data-parallel training averages the gradients over the ranks there).
    """
    out: dict[str, Tensor] = {}
    skipped = 0
    D_plain = getattr(D, "_orig_mod", D)  # double backward goes through the plain (uncompiled) D
    for i in range(n_critic):
        real, y = _split(next(batches))  # y: class labels for a conditional model, else None
        cond = () if y is None else (y,)  # G and D get the labels; fakes take the real batch's classes
        z = noise(G, real.shape[0], real.device)
        with precision.autocast():
            if n_critic == 1:
                fake = G(z, *cond)  # kept with its graph: the G step below reuses this batch
            else:
                with torch.no_grad():
                    fake = G(z, *cond)
            real_logits, fake_logits = D(real, *cond).float(), D(fake.detach(), *cond).float()
            loss_D = loss.d_loss(real_logits, fake_logits)
        with precision.autocast(penalty=True):
            critic = D_plain if y is None else (lambda x: D_plain(x, y))
            penalty = loss.penalty(critic, real, fake.detach())
        opt_D.zero_grad(set_to_none=True)
        precision.backward(loss_D + penalty, "D")
        if sync:
            sync(D)
        if want_stats and i == n_critic - 1:
            precision.unscale(opt_D, "D")
            out["grad_norm/D"] = grad_norm(D)
        # (under fp16 the gradient scaler itself skips a step whose gradients overflowed)
        if skip_nonfinite and not precision.scalers and not bool(torch.isfinite(loss_D + penalty)):
            skipped += 1
            continue
        precision.step(opt_D, "D")
        loss.constrain(D)

    with precision.autocast():
        if n_critic > 1:
            fake = G(noise(G, real.shape[0], real.device), *cond)
        D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        k = getattr(loss, "unroll_steps", 0)
        critic = unrolled_critic(D_plain, loss, real, fake, cond, opt_D.param_groups[0]["lr"], k) if k else D
        loss_G = loss.g_loss(loss.select(critic(fake, *cond).float()))  # select: top-k training, else all
    opt_G.zero_grad(set_to_none=True)
    precision.backward(loss_G, "G")
    D.requires_grad_(True)
    if sync:
        sync(G)
    if want_stats:
        precision.unscale(opt_G, "G")
        out["grad_norm/G"] = grad_norm(G)
        out.update(loss.stats(real_logits.detach(), fake_logits.detach()))
        out.update(health(real, fake.detach(), real_logits.detach(), y))
    if skip_nonfinite and not precision.scalers and not bool(torch.isfinite(loss_G)):
        skipped += 1
    else:
        precision.step(opt_G, "G")
    if skip_nonfinite:
        out["skipped"] = torch.tensor(float(skipped))
    out.update({"loss/D": loss_D.detach(), "loss/G": loss_G.detach(), "loss/penalty": penalty.detach()})
    return out


def vae_step(G: nn.Module, D: nn.Module, loss: Loss, opt_G: torch.optim.Optimizer,
             opt_D: torch.optim.Optimizer, batches: Iterator[Tensor], n_critic: int,
             want_stats: bool, skip_nonfinite: bool = False, precision: Precision = FP32,
             sync: Callable[[nn.Module], None] | None = None) -> dict[str, Tensor]:
    """One VAE update (model=vae): G is the decoder, D the encoder; both minimise -ELBO on one batch
    (the reparameterised z = mu + sigma * eps carries the gradient into the encoder). Same signature
    and outputs as train_step, so fit() runs either; the GAN `loss` and n_critic do not apply.
    loss/G: -ELBO per sample (nats, beta-weighted); vae/recon and vae/kl: its two terms."""
    real, _ = _split(next(batches))
    elbo = getattr(D, "_orig_mod", D).elbo
    with precision.autocast():
        mu, logvar = D(real)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = G(z)
    terms = elbo(real.float(), recon.float(), mu.float(), logvar.float())
    opt_G.zero_grad(set_to_none=True)
    opt_D.zero_grad(set_to_none=True)
    precision.backward(terms["loss"], "G")
    if sync:
        sync(G)
        sync(D)
    out = {"loss/G": terms["loss"].detach(), "vae/recon": terms["recon"].detach(), "vae/kl": terms["kl"].detach()}
    if want_stats:
        precision.unscale(opt_G, "G")
        out["grad_norm/G"], out["grad_norm/D"] = grad_norm(G), grad_norm(D)
        with torch.no_grad(), eval_mode(G):  # samples from the prior, as the sampler draws them
            out.update(health(real, G(torch.randn_like(mu)).float()))
    if skip_nonfinite and not precision.scalers and not bool(torch.isfinite(terms["loss"])):
        out["skipped"] = torch.tensor(1.0)
        return out
    precision.step(opt_G, "G", opt_D)
    if skip_nonfinite:
        out["skipped"] = torch.tensor(0.0)
    return out


def health(real: Tensor, fake: Tensor, real_logits: Tensor | None = None,
           labels: Tensor | None = None) -> dict[str, Tensor]:
    """Training-health signals on one batch (logging steps only).

    health/diversity: mean pairwise distance between G's samples over the same for real data; near 1
    when G is as varied as the data, near 0 when many z map to one output (mode collapse). With labels
    (a conditional model: fakes drawn for the real batch's classes) only pairs of one class count, so
    a G that draws one image per class reads near 0 too.
    health/d_real_sign: E[sign(D(x))], the overfitting signal adaptive augmentation watches; near 1
    when D calls every real sample real with a margin (only when real_logits are given).
    """
    with torch.no_grad():
        same = None
        if labels is not None:
            same = labels[:, None] == labels[None, :]
            same.fill_diagonal_(False)
            same = same if bool(same.any()) else None  # no two of one class: all pairs
        spread_fake, spread_real = _spread(fake, same), _spread(real, same)
        out = {"health/diversity": spread_fake / spread_real.clamp(min=1e-12)}
        if real_logits is not None:
            out["health/d_real_sign"] = real_logits.sign().mean()
        return out


def _spread(x: Tensor, pairs: Tensor | None) -> Tensor:
    """Mean distance between the rows of x over all pairs, or over the pairs marked in `pairs` (N, N)."""
    flat = x.flatten(1).float()
    return torch.pdist(flat).mean() if pairs is None else torch.cdist(flat, flat)[pairs].mean()


class Monitor:
    """Warns on the terminal (once per kind) when a health signal trips, naming the usual remedies."""

    def __init__(self) -> None:
        self.warned: set[str] = set()

    def __call__(self, step: int, stats: dict[str, float]) -> list[str]:
        found = []
        if stats.get("health/diversity", 1.0) < 0.25:
            found.append(("collapse", f"step {step}: possible mode collapse: G's samples are "
                          f"{stats['health/diversity']:.2f}x as spread out as the data; try loss=wgan-gp, "
                          f"model.spectral_norm=true, a lower optimizer.lr_g, or train.n_critic > 1"))
        if stats.get("D(G(z))", 1.0) < 0.02 and stats.get("D(x)", 0.0) > 0.98:
            found.append(("d_wins", f"step {step}: D wins outright (D(G(z)) = {stats['D(G(z))']:.3f}); try "
                          f"loss.real_label=0.9, loss.flip_prob=0.05, model.d_dropout=0.3, a lower "
                          f"optimizer.lr_d, or loss=wgan-gp"))
        messages = []
        for kind, message in found:
            if kind not in self.warned:
                self.warned.add(kind)
                log.warning(message)
                messages.append(message)
        return messages


class EMA:
    """G_ema: an exponential moving average of G's weights, updated after every G step.

    Averaging damps the oscillation of adversarial training, so G_ema's samples are usually
    cleaner than G's. Buffers (BatchNorm running statistics) are copied, not averaged.
    """

    def __init__(self, G: nn.Module, decay: float):
        import copy

        self.decay = decay
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, G: nn.Module) -> None:
        ema_params = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_params, list(G.parameters()), 1.0 - self.decay)  # one fused kernel
        for b_ema, b in zip(self.G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)


class Sampler:
    """Renders G's output on a fixed z: PNG files in samples/ and images in TensorBoard (a grid of
    images, a scatter plot of 2-D points, or the 1-D game's figure with D(x) for 1-D data)."""

    def __init__(self, exp: Experiment, G: nn.Module, n_images: int, seed: int, out_dir: Path):
        self.exp = exp
        self.G = G  # G itself, or G_ema when the run keeps one
        self.points = exp.data.kind == "points"
        n = TOY_POINTS if self.points else n_images
        self.labels, self.nrow = images.class_rows(getattr(exp.G, "n_classes", 0), n)
        if self.labels is not None:  # conditional: one class per row
            n, self.labels = len(self.labels), self.labels.to(exp.device)
        gen = torch.Generator().manual_seed(seed + 1)  # fixed z, the same on every device
        self.z = noise(exp.G, n, generator=gen).to(exp.device)
        self.reference = exp.data.sample(TOY_POINTS, gen) if self.points else None
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)

    @torch.no_grad()
    def __call__(self, step: int, writer: Any) -> Path:
        G = self.G
        with eval_mode(G):  # BatchNorm uses running statistics, as `ganrun sample` will
            x = G(self.z) if self.labels is None else G(self.z, self.labels)
        path = self.out_dir / f"step_{step:06d}.png"
        if self.points and self.exp.data.shape == (1,):
            img = game1d.figure(G, self.exp.D, self.exp.data, self.exp.loss.probability, f"step {step}")
        elif self.points:
            img = images.scatter(x, self.reference, self.exp.data.centers, f"step {step}")
        else:
            img = images.grid(x, self.nrow)
        images.save_png(img, path)
        writer.add_image("samples", img, step)
        return path


def _is_finite(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


def restore(exp: Experiment, ckpt: dict[str, Any], ema: EMA | None, precision: Precision = FP32) -> int:
    """Load a checkpoint's weights, optimizer and RNG states into a built experiment; returns its step."""
    for name, module in (("G", exp.G), ("D", exp.D)):
        mismatch = checkpoint.first_mismatch(module, ckpt[name])
        if mismatch:
            raise checkpoint.CheckpointError(f"resume: {name} does not fit the checkpoint: {mismatch}")
        module.load_state_dict(ckpt[name])
    exp.opt_G.load_state_dict(ckpt["opt_G"])
    exp.opt_D.load_state_dict(ckpt["opt_D"])
    if ema is not None:
        ema.G_ema.load_state_dict(ckpt.get("G_ema", ckpt["G"]))
    precision.load_state_dict(ckpt.get("grad_scalers", {}))
    checkpoint.set_rng_state(ckpt["rng"])
    return int(ckpt["step"])


def compiled_step(G: nn.Module, D: nn.Module, opts: tuple[torch.optim.Optimizer, ...],
                  step: Callable[[nn.Module, nn.Module], dict[str, Tensor]]
                  ) -> tuple[nn.Module, nn.Module, dict[str, Tensor]]:
    """Run the first training step `step(G, D)` with torch.compile'd G and D; returns the modules
    to train with and that step's output. When compiling fails (no C compiler, an unsupported
    platform or op) the weights, optimizer and RNG states from before are put back, a warning
    says why, and the step runs eagerly. Checkpoints always hold the plain modules' weights."""
    import copy

    before = [copy.deepcopy(x.state_dict()) for x in (G, D, *opts)]
    rng = checkpoint.rng_state()
    try:
        G_c, D_c = torch.compile(G), torch.compile(D)
        return G_c, D_c, step(G_c, D_c)
    except Exception as e:  # noqa: BLE001 - whatever the compiler raises, training goes on eagerly
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        log.warning("train.compile: torch.compile failed (%s); training without it", reason)
        for x, state in zip((G, D, *opts), before):
            x.load_state_dict(state)
        checkpoint.set_rng_state(rng)
        return G, D, step(G, D)


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The learning-rate multiplier for G step `step` of `steps` (1-based): 1 at the first step, decaying
    towards 0 at the last. A function of the step alone, so a resumed run gets the same rates."""
    progress = (step - 1) / steps
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def top_k_share(top_k: float, step: int, steps: int) -> float:
    """Top-k training's share of fakes at G step `step` of `steps`: 1 at the start, falling linearly
    to top_k at mid-training, then top_k (a function of the step, so resuming gets the same)."""
    return max(top_k, 1.0 - (1.0 - top_k) * (step - 1) / max(steps / 2, 1))


def fit(exp: Experiment, cfg: DictConfig, run_dir: Path, writer: Any,
        resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train up to cfg.train.steps G updates (continuing from `resume`, a checkpoint, when given);
    returns the run summary. SIGINT/SIGTERM end the step in flight, save last.pt and raise Interrupted."""
    t = cfg.train
    G, D = exp.G.train(), exp.D.train()
    ema = EMA(G, t.ema) if t.ema > 0 else None
    precision = Precision(t.precision, exp.device.type)
    first = restore(exp, resume, ema, precision) + 1 if resume else 1
    # the data stream is a function of (seed, batch number): a resumed run continues it exactly
    ranks = distributed.world()
    extra = {"rank": ranks.rank, "world": ranks.size} if ranks.active else {}
    if cfg.model.get("conditional"):
        extra["labels"] = True
    batches = exp.data.batches(t.batch_size, exp.device, seed=t.seed, start=(first - 1) * t.n_critic, **extra)
    if ranks.active:  # each rank its own noise, from a stream that depends on (seed, rank, step)
        torch.manual_seed(t.seed * 1_000_003 + ranks.rank * 10_007 + first)
    sampler = Sampler(exp, ema.G_ema if ema else G, t.n_samples, t.seed, run_dir / "samples")
    ckpt_dir = run_dir / "checkpoints"
    show_bar = t.progress and sys.stderr.isatty() and ranks.main
    from tqdm import tqdm

    bar = tqdm(total=t.steps, initial=first - 1, disable=not show_bar, unit="step", dynamic_ncols=True)
    last: dict[str, float] = {}
    scores: dict[str, float] = {}
    floor: dict[str, float] = {}
    evaluator: Evaluator | None = None  # built at the first evaluation (it may train a classifier)
    monitor = Monitor()
    G_step, D_step = G, D  # what the training step runs: torch.compile'd views when train.compile

    step_fn = vae_step if isinstance(D, Encoder) else train_step  # model=vae trains on its ELBO

    def one_step(G_s: nn.Module, D_s: nn.Module, want_stats: bool, source: Iterator[Tensor]) -> dict[str, Tensor]:
        return step_fn(G_s, D_s, exp.loss, exp.opt_G, exp.opt_D, source, t.n_critic,
                          want_stats=want_stats, skip_nonfinite=skip, precision=precision,
                          sync=distributed.average_gradients if ranks.active else None)

    rng_devices = [exp.device] if exp.device.type == "cuda" else []
    skip = t.on_nan == "skip"
    skipped_total = 0
    start = time.perf_counter()
    tick, tick_step = start, first - 1

    def save(step: int, names: tuple[str, ...]) -> None:
        if not ranks.main:
            return
        if not (_is_finite(G) and _is_finite(D)):
            raise NonFiniteError(f"step {step}: G or D weights are not finite; kept the last good checkpoint")
        ckpt = {"format": checkpoint.FORMAT, "step": step, "G": G.state_dict(), "D": D.state_dict(),
                "opt_G": exp.opt_G.state_dict(), "opt_D": exp.opt_D.state_dict(), "rng": checkpoint.rng_state(),
                "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
                "data": {"kind": exp.data.kind, "shape": list(exp.data.shape),
                         "n_classes": getattr(exp.data, "n_classes", 0)},
                "grad_scalers": precision.state_dict()}
        if ema:
            ckpt["G_ema"] = ema.G_ema.state_dict()
        for name in names:
            try:
                checkpoint.save(ckpt_dir / name, ckpt)
            except OSError as e:  # disk full, permissions: the previous file is untouched
                message = (f"could not write {ckpt_dir / name} at step {step} ({e.strerror or e}); "
                           f"the previous checkpoint is intact")
                if step == t.steps or names == ("last.pt",):
                    raise checkpoint.CheckpointError(message) from None
                log.error("%s; training goes on", message)

    # from the config, not the optimizers: a resumed optimizer's state holds the decayed rates
    base_lrs = [(exp.opt_G, cfg.optimizer.lr_g), (exp.opt_D, cfg.optimizer.lr_d)]
    with StopFlag() as stop:
        for step in range(first, t.steps + 1):
            if t.lr_schedule != "constant":
                factor = lr_factor(t.lr_schedule, step, t.steps)
                for opt, lr in base_lrs:
                    for group in opt.param_groups:
                        group["lr"] = lr * factor
            if getattr(exp.loss, "top_k", 1.0) < 1.0:
                exp.loss.keep = top_k_share(exp.loss.top_k, step, t.steps)
            log_now = step % t.log_every == 0 or step == t.steps
            if t.compile and step == first:  # a failed compile retries eagerly on the same batches
                head = [next(batches) for _ in range(t.n_critic)]
                G_step, D_step, out = compiled_step(G, D, (exp.opt_G, exp.opt_D),
                                                    lambda G_s, D_s: one_step(G_s, D_s, log_now, iter(head)))
            else:
                out = one_step(G_step, D_step, log_now, batches)
            if skip and out["skipped"] > 0:
                skipped_total += int(out["skipped"])
                log.warning("step %d: skipped %d update(s) with a non-finite loss (train.on_nan=skip)",
                            step, int(out["skipped"]))
            if ema:
                ema.update(G)
            bar.update(1)
            if log_now:
                now = time.perf_counter()
                if ranks.active:  # the mean over the ranks: every rank logs and decides alike
                    out = distributed.average_scalars(out)
                last = {k: float(v) for k, v in out.items()}  # the host sync, once per log_every steps
                last["steps_per_s"] = (step - tick_step) / max(now - tick, 1e-9)
                tick, tick_step = now, step
                losses = {k.split("/")[1]: v for k, v in last.items() if k.startswith("loss/") and k != "loss/penalty"}
                bad = [f"loss/{k}" for k, v in losses.items() if not math.isfinite(v)]
                if bad and not skip:
                    raise NonFiniteError(f"step {step}: {bad[0]} = {last[bad[0]]}; lower the learning rates "
                                         f"(optimizer.lr_g / lr_d) or change the loss; kept the last good checkpoint")
                for k, v in last.items():
                    writer.add_scalar(k, v, step)
                if ranks.main:
                    monitor(step, last)
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
                if not show_bar:
                    log.info("step %d/%d  %s  %.1f steps/s", step, t.steps,
                             "  ".join(f"loss/{k} {v:.4f}" for k, v in losses.items()), last["steps_per_s"])
            # samples and metrics leave the training RNG stream untouched, so when they run
            # does not change the training (a resumed run stays bit-identical to a straight one)
            with torch.random.fork_rng(devices=rng_devices):
                # only rank 0 writes samples and evaluates
                if ranks.main and (step % t.sample_every == 0 or step == t.steps):
                    sampler(step, writer)
                if ranks.main and (step == t.steps or (t.eval_every and step % t.eval_every == 0)):
                    evaluator = evaluator or Evaluator(cfg.dataset, exp.data, t.eval_n)
                    scores, floor = evaluator(sampler.G, sampler.z, seed=t.seed,  # the same z at every evaluation
                                              D=unaugmented(exp.D) if t.drs else None)
                    for k, v in scores.items():
                        writer.add_scalar(f"eval/{k}", v, step)
                    for k, v in floor.items():  # real data scored alike: the floor beside each curve
                        writer.add_scalar(f"eval_real/{k}", v, step)
            stopping = stop.signum is not None
            if ranks.active:  # all ranks stop at the same step: they agree at logging steps
                stopping = log_now and distributed.any_rank(stopping, exp.device)
            if stopping and step != t.steps:
                bar.close()
                save(step, ("last.pt",))
                writer.flush()
                raise Interrupted(step, stop.signum or signal.SIGTERM)
            if t.ckpt_every and step % t.ckpt_every == 0 and step != t.steps:
                save(step, (f"step_{step:06d}.pt", "last.pt"))
        bar.close()
        save(t.steps, (f"step_{t.steps:06d}.pt", "last.pt"))
    wall = time.perf_counter() - start
    writer.flush()
    return {"status": "completed", "step": t.steps, "steps": t.steps, "resumed_from": first - 1 if resume else None,
            "losses": {k: v for k, v in last.items() if k.startswith("loss/")},
            "stats": {k: v for k, v in last.items() if not k.startswith("loss/")}, "metrics": scores,
            "metrics_real": floor, "per_class": evaluator.per_class if evaluator else {},
            "metric_settings": evaluator.settings if evaluator else {},
            "skipped_updates": skipped_total, "wall_time_s": round(wall, 2), "steps_per_s": round((t.steps - first + 1) / wall, 3),
            "device": str(exp.device)}


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """summary.json: the run's final step, losses, stats and time, for scripts and sweep tables."""
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
