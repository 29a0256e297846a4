"""Callbacks: everything fit() does around the training step, one object per job.

fit() (ganrun.loop) is the loop: per G step it calls `before_step` on every callback, runs the objective's
step, then `after_step` with the step's scalar tensors, in list order. After the last step, `on_end`;
a checkpoint asks each callback to `save` its state into it, and resuming calls `restore`.
The one rank-0 gate: a callback with `main_only = True` exists on rank 0 only (previews, evaluation,
checkpoints); the others run on every rank (the learning-rate schedule, EMA, scalar logging, which
averages over the ranks). A new per-step technique (adaptive augmentation, another logger) is one more
class here and one line in `default_callbacks`; the loop does not change.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ganrun import checkpoint, distributed, game1d, images, metrics
from ganrun.augment import Augmented, unaugmented
from ganrun.build import Experiment
from ganrun.evaluate import Evaluator
from ganrun.health import Monitor
from ganrun.models.common import eval_mode, noise
from ganrun.precision import Precision

log = logging.getLogger(__name__)

TOY_POINTS = metrics.TOY_SAMPLES  # points per plot (and evaluation) on the toy sets


class NonFiniteError(RuntimeError):
    """A loss or weight became NaN/inf; the last good checkpoint is kept."""


class Callback:
    """Base class: every hook does nothing. `main_only` callbacks are built on rank 0 only."""

    main_only = False

    def before_step(self, step: int) -> None:
        """Before G step `step` (1-based) runs."""

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        """After G step `step`, with its scalar tensors (statistics only on logging steps)."""

    def on_end(self, step: int) -> None:
        """After the last step (also after an interrupted one), before the final checkpoint."""

    def save(self, ckpt: dict[str, Any]) -> None:
        """Add this callback's state to a checkpoint being written."""

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Take this callback's state back from a checkpoint when resuming."""

    def summary(self) -> dict[str, Any]:
        """Keys this callback adds to summary.json."""
        return {}


def is_log_step(cfg: DictConfig, step: int) -> bool:
    return step % cfg.train.log_every == 0 or step == cfg.train.steps


def is_sample_step(cfg: DictConfig, step: int) -> bool:
    return step % cfg.train.sample_every == 0 or step == cfg.train.steps


def is_eval_step(cfg: DictConfig, step: int) -> bool:
    return step == cfg.train.steps or bool(cfg.train.eval_every and step % cfg.train.eval_every == 0)


def is_ckpt_step(cfg: DictConfig, step: int) -> bool:
    """A periodic checkpoint (the final one is written by fit after on_end)."""
    return bool(cfg.train.ckpt_every and step % cfg.train.ckpt_every == 0 and step != cfg.train.steps)


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The learning-rate multiplier for G step `step` of `steps` (1-based): 1 at the first step, decaying
    towards 0 at the last. A function of the step alone, so a resumed run gets the same rates."""
    progress = (step - 1) / steps
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


class LRSchedule(Callback):
    """train.lr_schedule: both optimizers' rates for each step, from the config's rates (not the
    optimizers': a resumed optimizer's state holds decayed ones)."""

    def __init__(self, exp: Experiment, cfg: DictConfig):
        self.schedule, self.steps = cfg.train.lr_schedule, cfg.train.steps
        self.base = [(exp.opt_G, cfg.optimizer.lr_g), (exp.opt_D, cfg.optimizer.lr_d)]

    def before_step(self, step: int) -> None:
        if self.schedule == "constant":
            return
        factor = lr_factor(self.schedule, step, self.steps)
        for opt, lr in self.base:
            for group in opt.param_groups:
                group["lr"] = lr * factor


def ema_decay(decay: float, rampup: float, step: int) -> float:
    """The EMA decay at G step `step` (1-based): `decay`, or with a warm-up (StyleGAN2's ema_rampup) the decay
    whose half-life is min(decay's half-life, rampup * step) steps, so the average's horizon grows with the
    run and G_ema follows G closely early on (a short run's samples show what G has learned)."""
    if not rampup or not 0.0 < decay < 1.0:
        return decay
    half_life = min(math.log(0.5) / math.log(decay), rampup * step)
    return 0.5 ** (1.0 / half_life)


class EMA(Callback):
    """train.ema: G_ema, an exponential moving average of G's weights, updated after every G step, with
    the decay warming up over the run (train.ema_rampup, see ema_decay).

    Averaging damps the oscillation of adversarial training, so G_ema's samples are usually cleaner
    than G's. BatchNorm's running statistics belong to G's weights, not to the averaged ones, so before
    anything reads G_ema (previews, metrics, a checkpoint) they are recomputed: G_ema runs in train mode
    on `BN_BATCHES` batches of fixed noise (every class in turn for a conditional G), averaging the batch
    statistics. The training RNG is untouched.
    """

    BN_BATCHES = 16

    def __init__(self, G: nn.Module, decay: float, cfg: DictConfig):
        self.G, self.decay, self.cfg, self.t = G, decay, cfg, cfg.train
        self.rampup = cfg.train.ema_rampup
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        self.norms = [m for m in self.G_ema.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    @torch.no_grad()
    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        ema_params = list(self.G_ema.parameters())
        weight = 1.0 - ema_decay(self.decay, self.rampup, step)
        torch._foreach_lerp_(ema_params, list(self.G.parameters()), weight)  # one fused kernel
        read = (is_sample_step(self.cfg, step) or is_eval_step(self.cfg, step)  # the steps G_ema is read at
                or is_ckpt_step(self.cfg, step))
        if self.norms and read:
            self.recompute_norms()

    def on_end(self, step: int) -> None:
        if self.norms and step != self.t.steps:  # an interrupted run's last.pt: statistics for its weights too
            self.recompute_norms()

    @torch.no_grad()
    def recompute_norms(self) -> None:
        """BatchNorm statistics of G_ema's own weights: the average over BN_BATCHES train-mode batches."""
        G, device = self.G_ema, next(self.G_ema.parameters()).device
        saved = [(m.momentum, m.training) for m in self.norms]
        for m in self.norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches below
            m.train()
        gen = torch.Generator().manual_seed(12345)
        n_classes = getattr(G, "n_classes", 0)
        for _ in range(self.BN_BATCHES):
            z = noise(G, self.t.batch_size, generator=gen).to(device)
            if n_classes:
                G(z, (torch.arange(len(z)) % n_classes).to(device))
            else:
                G(z)
        for m, (momentum, training) in zip(self.norms, saved):
            m.momentum = momentum
            m.train(training)

    def save(self, ckpt: dict[str, Any]) -> None:
        ckpt["G_ema"] = self.G_ema.state_dict()

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.G_ema.load_state_dict(ckpt.get("G_ema", ckpt["G"]))


class AdaptiveAugment(Callback):
    """train.ada_target > 0: adaptive discriminator augmentation (Karras et al. 2020). The probability p
    of each train.augment transform starts at 0; every INTERVAL steps it moves by
    sign(r - target) * (images seen in the interval) / (ada_kimg * 1000), where r = E[sign D(real)] over
    those steps (near 1 when D calls every real image real with a margin: overfitting), clamped to
    [0, 1]. Kept on the device; read on the host once per interval, so that while p is 0 D skips the
    transforms (they would all be thrown away). Logged as ada/p, saved in checkpoints and restored."""

    INTERVAL = 4

    def __init__(self, D: Augmented, cfg: DictConfig):
        t = cfg.train
        self.D, self.target = D, t.ada_target
        self.step_size = t.batch_size * t.n_critic * self.INTERVAL / (t.ada_kimg * 1000)
        D.p = torch.zeros((), device=next(D.parameters()).device)
        D.idle = True
        self.signs: list[Tensor] = []

    @torch.no_grad()
    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        self.signs.append(out["health/d_real_sign"])
        if len(self.signs) == self.INTERVAL:
            r = torch.stack(self.signs).mean()
            self.D.p.add_(torch.sign(r - self.target) * self.step_size).clamp_(0.0, 1.0)  # in place: one tensor
            self.D.idle = bool(self.D.p == 0)  # the one host read per interval
            self.signs = []
        out["ada/p"] = self.D.p.clone()

    def save(self, ckpt: dict[str, Any]) -> None:
        ckpt["ada"] = {"p": self.D.p.clone(), "signs": [s.clone() for s in self.signs]}

    def restore(self, ckpt: dict[str, Any]) -> None:
        if "ada" not in ckpt:
            raise checkpoint.CheckpointError("resume: train.ada_target is set but the checkpoint has no ADA state; "
                                             "resume with the run's own train.ada_target")
        self.D.p.copy_(ckpt["ada"]["p"])
        self.D.idle = bool(self.D.p == 0)
        self.signs = [s.to(self.D.p.device) for s in ckpt["ada"]["signs"]]


class ScalarLog(Callback):
    """On logging steps: the host sync (the mean over the ranks under torchrun), the non-finite check,
    TensorBoard scalars, health warnings (rank 0), and the latest values for the progress bar."""

    def __init__(self, cfg: DictConfig, writer: Any, first: int, ranks: distributed.World):
        self.cfg, self.writer, self.ranks = cfg, writer, ranks
        self.skip = cfg.train.on_nan == "skip"
        self.tick, self.tick_step = time.perf_counter(), first - 1
        self.last: dict[str, float] = {}
        self.monitor = Monitor()

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        if not is_log_step(self.cfg, step):
            return
        if self.ranks.active:  # every rank the same mean, so every rank decides alike
            out = distributed.average_scalars(out)
        now = time.perf_counter()
        last = {k: float(v) for k, v in out.items()}  # the host sync, once per log_every steps
        last["steps_per_s"] = (step - self.tick_step) / max(now - self.tick, 1e-9)
        self.last, self.tick, self.tick_step = last, now, step
        bad = [k for k, v in self.losses().items() if not math.isfinite(v)]
        if bad and not self.skip:
            raise NonFiniteError(f"step {step}: {bad[0]} = {last[bad[0]]}; lower the learning rates "
                                 f"(optimizer.lr_g / lr_d) or change the loss; kept the last good checkpoint")
        for k, v in last.items():
            self.writer.add_scalar(k, v, step)
        if self.ranks.main:
            self.monitor(step, last)

    def losses(self) -> dict[str, float]:
        return {k: v for k, v in self.last.items() if k.startswith("loss/") and k != "loss/penalty"}

    def summary(self) -> dict[str, Any]:
        return {"losses": {k: v for k, v in self.last.items() if k.startswith("loss/")},
                "stats": {k: v for k, v in self.last.items() if not k.startswith("loss/")}}


class SkippedUpdates(Callback):
    """train.on_nan=skip: warns on each step that dropped an update and counts them for the summary."""

    def __init__(self) -> None:
        self.total = 0

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        if "skipped" in out and out["skipped"] > 0:
            self.total += int(out["skipped"])
            log.warning("step %d: skipped %d update(s) with a non-finite loss (train.on_nan=skip)",
                        step, int(out["skipped"]))

    def summary(self) -> dict[str, Any]:
        return {"skipped_updates": self.total}


class ProgressBar(Callback):
    """A tqdm bar with the latest losses on a terminal (rank 0, train.progress); otherwise a log line
    on each logging step."""

    def __init__(self, cfg: DictConfig, scalars: ScalarLog, first: int, show: bool):
        from tqdm import tqdm

        self.cfg, self.scalars, self.show = cfg, scalars, show
        self.bar = tqdm(total=cfg.train.steps, initial=first - 1, disable=not show, unit="step", dynamic_ncols=True)

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        self.bar.update(1)
        if not is_log_step(self.cfg, step):
            return
        losses = {k.split("/")[1]: v for k, v in self.scalars.losses().items()}
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
        if not self.show and self.scalars.ranks.main:
            log.info("step %d/%d  %s  %.1f steps/s", step, self.cfg.train.steps,
                     "  ".join(f"loss/{k} {v:.4f}" for k, v in losses.items()), self.scalars.last["steps_per_s"])

    def on_end(self, step: int) -> None:
        self.bar.close()


class Previews(Callback):
    """Every train.sample_every steps and at the end: G's output on a fixed z as a PNG in samples/ and an
    image in TensorBoard (a grid of images, a scatter of 2-D points, or the 1-D game's figure with D(x)).
    A conditional G gets one class per row."""

    main_only = True

    def __init__(self, exp: Experiment, G: nn.Module, cfg: DictConfig, out_dir: Path, writer: Any):
        t = cfg.train
        self.exp, self.G, self.writer, self.cfg = exp, G, writer, cfg
        self.points = exp.data.kind == "points"
        n = TOY_POINTS if self.points else t.n_samples
        self.labels, self.nrow = images.class_rows(getattr(exp.G, "n_classes", 0), n)
        if self.labels is not None:
            n, self.labels = len(self.labels), self.labels.to(exp.device)
        gen = torch.Generator().manual_seed(t.seed + 1)  # fixed z, the same on every device
        self.z = noise(exp.G, n, generator=gen).to(exp.device)
        self.reference = exp.data.sample(TOY_POINTS, gen) if self.points else None
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        if is_sample_step(self.cfg, step):
            with fork_rng(self.exp):
                self.render(step)

    @torch.no_grad()
    def render(self, step: int) -> Path:
        with eval_mode(self.G):  # BatchNorm uses running statistics, as `ganrun sample` will
            x = self.G(self.z) if self.labels is None else self.G(self.z, self.labels)
        path = self.out_dir / f"step_{step:06d}.png"
        data = self.exp.data
        if self.points and data.shape == (1,):
            img = game1d.figure(self.G, self.exp.D, data, self.exp.objective.probability, f"step {step}")
        elif self.points:
            img = images.scatter(x, self.reference, data.centers, f"step {step}")
        elif self.labels is not None:
            img = images.class_grid(x, self.labels, self.nrow)
        else:
            img = images.grid(x, self.nrow)
        images.save_png(img, path)
        self.writer.add_image("samples", img, step)
        return path


def fork_rng(exp: Experiment) -> Any:
    """Previews and metrics leave the training RNG streams untouched, so when they run does not change
    the training (a resumed run stays bit-identical to a straight one)."""
    return torch.random.fork_rng(devices=[exp.device] if exp.device.type == "cuda" else [])


class Evaluation(Callback):
    """The quality metrics every train.eval_every steps and at the end (rank 0): built at the first one
    (it may train a classifier), on the previews' generator and fixed z, with D's rejection sampling
    when train.drs is on. Scores and real data's floor go to TensorBoard (eval/, eval_real/) and the summary."""

    main_only = True

    def __init__(self, exp: Experiment, cfg: DictConfig, previews: Previews, writer: Any):
        self.exp, self.cfg, self.previews, self.writer = exp, cfg, previews, writer
        self.evaluator: Evaluator | None = None
        self.scores: dict[str, float] = {}
        self.floor: dict[str, float] = {}

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        if is_eval_step(self.cfg, step):
            with fork_rng(self.exp):
                self.evaluate(step)

    def evaluate(self, step: int) -> None:
        t = self.cfg.train
        self.evaluator = self.evaluator or Evaluator(self.exp.data, t.eval_n)
        self.scores, self.floor = self.evaluator(self.previews.G, self.previews.z, seed=t.seed,  # the same z
                                                 D=unaugmented(self.exp.D) if t.drs else None)
        for k, v in self.scores.items():
            self.writer.add_scalar(f"eval/{k}", v, step)
        for k, v in self.floor.items():  # real data scored alike: the floor beside each curve
            self.writer.add_scalar(f"eval_real/{k}", v, step)

    def summary(self) -> dict[str, Any]:
        ev = self.evaluator
        return {"metrics": self.scores, "metrics_real": self.floor, "per_class": ev.per_class if ev else {},
                "metric_settings": ev.settings if ev else {}}


def _is_finite(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


class Checkpoints(Callback):
    """Every train.ckpt_every steps (rank 0): checkpoints/step_NNNNNN.pt and last.pt with the weights,
    optimizers, RNG, config, data description, gradient scalers and every callback's state. Refuses
    non-finite weights; a failed periodic write leaves the previous file and training goes on."""

    main_only = True

    def __init__(self, exp: Experiment, cfg: DictConfig, precision: Precision, ckpt_dir: Path,
                 callbacks: list[Callback], overrides: list[str]):
        self.exp, self.cfg, self.precision, self.dir, self.callbacks = exp, cfg, precision, ckpt_dir, callbacks
        self.overrides = overrides

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        if is_ckpt_step(self.cfg, step):
            self.write(step, (f"step_{step:06d}.pt", "last.pt"))

    def write(self, step: int, names: tuple[str, ...]) -> None:
        exp, G, D = self.exp, self.exp.G, self.exp.D
        if not (_is_finite(G) and _is_finite(D)):
            raise NonFiniteError(f"step {step}: G or D weights are not finite; kept the last good checkpoint")
        ckpt = {"format": checkpoint.FORMAT, "step": step, "G": G.state_dict(), "D": D.state_dict(),
                "opt_G": exp.opt_G.state_dict(), "opt_D": exp.opt_D.state_dict(), "rng": checkpoint.rng_state(),
                "config": OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True),
                "data": {"kind": exp.data.kind, "shape": list(exp.data.shape), "n_classes": exp.data.n_classes,
                         **({"clusters": exp.data.classes} if getattr(exp.data, "pseudo", False) else {})},
                "grad_scalers": self.precision.state_dict(), "objective": exp.objective.state_dict(),
                "overrides": list(self.overrides)}
        for callback in self.callbacks:
            if callback is not self:
                callback.save(ckpt)
        for name in names:
            try:
                checkpoint.save(self.dir / name, ckpt)
            except OSError as e:  # disk full, permissions: the previous file is untouched
                message = (f"could not write {self.dir / name} at step {step} ({e.strerror or e}); "
                           f"the previous checkpoint is intact")
                if step == self.cfg.train.steps or names == ("last.pt",):
                    raise checkpoint.CheckpointError(message) from None
                log.error("%s; training goes on", message)


def default_callbacks(exp: Experiment, cfg: DictConfig, run_dir: Path, writer: Any, first: int,
                      ranks: distributed.World, precision: Precision,
                      extra: list[Callback] | None = None, overrides: list[str] = ()) -> list[Callback]:
    """The run's callbacks in call order, `extra` ones after the built-in ones and before the checkpoints
    (so a checkpoint holds their state). The one rank-0 gate: `main_only` callbacks exist on rank 0 only.
    EMA comes before the previews (which draw from G_ema)."""
    t = cfg.train
    G = exp.G
    ema = EMA(G, t.ema, cfg) if t.ema > 0 else None
    scalars = ScalarLog(cfg, writer, first, ranks)
    show_bar = t.progress and ranks.main and _is_terminal()
    ada = [AdaptiveAugment(exp.D, cfg)] if t.ada_target > 0 and isinstance(exp.D, Augmented) else []
    callbacks: list[Callback] = [LRSchedule(exp, cfg), *([ema] if ema else []), *ada, SkippedUpdates(), scalars,
                                 ProgressBar(cfg, scalars, first, show_bar)]
    if ranks.main:
        previews = Previews(exp, ema.G_ema if ema else G, cfg, run_dir / "samples", writer)
        callbacks += [previews, Evaluation(exp, cfg, previews, writer)]
    callbacks += [c for c in extra or [] if ranks.main or not c.main_only]
    if ranks.main:
        callbacks.append(Checkpoints(exp, cfg, precision, run_dir / "checkpoints", callbacks, list(overrides)))
    return callbacks


def _is_terminal() -> bool:
    import sys

    return sys.stderr.isatty()
