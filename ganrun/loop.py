"""fit(): n_critic D steps, then one G step; intervals for logging, samples and checkpoints.

The step returns tensors; only logging steps turn them into Python floats, because every
.item() waits for the GPU to finish (a host-device sync point).
"""

from __future__ import annotations

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
from ganrun.build import Experiment
from ganrun.evaluate import Evaluator
from ganrun.health import Monitor
from ganrun.models.common import eval_mode, noise
from ganrun.precision import FP32, Precision

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
            img = game1d.figure(G, self.exp.D, self.exp.data, self.exp.objective.probability, f"step {step}")
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


class Checkpointer:
    """Writes checkpoints (rank 0 only): weights, optimizers, RNG, config and data description, EMA and
    gradient-scaler state; refuses non-finite weights; a failed periodic write leaves the previous file."""

    def __init__(self, exp: Experiment, cfg: DictConfig, ema: EMA | None, precision: Precision, ckpt_dir: Path,
                 main: bool):
        self.exp, self.cfg, self.ema, self.precision, self.dir, self.main = exp, cfg, ema, precision, ckpt_dir, main

    def save(self, step: int, names: tuple[str, ...]) -> None:
        exp, G, D = self.exp, self.exp.G, self.exp.D
        if not self.main:
            return
        if not (_is_finite(G) and _is_finite(D)):
            raise NonFiniteError(f"step {step}: G or D weights are not finite; kept the last good checkpoint")
        ckpt = {"format": checkpoint.FORMAT, "step": step, "G": G.state_dict(), "D": D.state_dict(),
                "opt_G": exp.opt_G.state_dict(), "opt_D": exp.opt_D.state_dict(), "rng": checkpoint.rng_state(),
                "config": OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True),
                "data": {"kind": exp.data.kind, "shape": list(exp.data.shape),
                         "n_classes": getattr(exp.data, "n_classes", 0)},
                "grad_scalers": self.precision.state_dict()}
        if self.ema:
            ckpt["G_ema"] = self.ema.G_ema.state_dict()
        for name in names:
            try:
                checkpoint.save(self.dir / name, ckpt)
            except OSError as e:  # disk full, permissions: the previous file is untouched
                message = (f"could not write {self.dir / name} at step {step} ({e.strerror or e}); "
                           f"the previous checkpoint is intact")
                if step == self.cfg.train.steps or names == ("last.pt",):
                    raise checkpoint.CheckpointError(message) from None
                log.error("%s; training goes on", message)


class ScalarLog:
    """On logging steps: the host sync, the non-finite check, TensorBoard scalars, health warnings, the
    progress bar's losses (or a log line when there is no bar)."""

    def __init__(self, writer: Any, bar: Any, show_bar: bool, first: int, steps: int, skip: bool, main: bool):
        self.writer, self.bar, self.show_bar, self.steps, self.skip, self.main = writer, bar, show_bar, steps, skip, main
        self.tick, self.tick_step = time.perf_counter(), first - 1
        self.last: dict[str, float] = {}
        self.monitor = Monitor()

    def __call__(self, step: int, out: dict[str, Tensor]) -> None:
        now = time.perf_counter()
        last = {k: float(v) for k, v in out.items()}  # the host sync, once per log_every steps
        last["steps_per_s"] = (step - self.tick_step) / max(now - self.tick, 1e-9)
        self.last, self.tick, self.tick_step = last, now, step
        losses = {k.split("/")[1]: v for k, v in last.items() if k.startswith("loss/") and k != "loss/penalty"}
        bad = [f"loss/{k}" for k, v in losses.items() if not math.isfinite(v)]
        if bad and not self.skip:
            raise NonFiniteError(f"step {step}: {bad[0]} = {last[bad[0]]}; lower the learning rates "
                                 f"(optimizer.lr_g / lr_d) or change the loss; kept the last good checkpoint")
        for k, v in last.items():
            self.writer.add_scalar(k, v, step)
        if self.main:
            self.monitor(step, last)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
        if not self.show_bar:
            log.info("step %d/%d  %s  %.1f steps/s", step, self.steps,
                     "  ".join(f"loss/{k} {v:.4f}" for k, v in losses.items()), last["steps_per_s"])


class Evaluation:
    """The quality metrics at evaluation steps (rank 0): built at the first one (it may train a classifier),
    on the sampler's generator and a fixed z, with D's rejection sampling when train.drs is on."""

    def __init__(self, exp: Experiment, cfg: DictConfig):
        self.exp, self.cfg = exp, cfg
        self.evaluator: Evaluator | None = None
        self.scores: dict[str, float] = {}
        self.floor: dict[str, float] = {}

    def __call__(self, step: int, sampler: Sampler, writer: Any) -> None:
        t = self.cfg.train
        self.evaluator = self.evaluator or Evaluator(self.cfg.dataset, self.exp.data, t.eval_n)
        self.scores, self.floor = self.evaluator(sampler.G, sampler.z, seed=t.seed,  # the same z every time
                                                 D=unaugmented(self.exp.D) if t.drs else None)
        for k, v in self.scores.items():
            writer.add_scalar(f"eval/{k}", v, step)
        for k, v in self.floor.items():  # real data scored alike: the floor beside each curve
            writer.add_scalar(f"eval_real/{k}", v, step)

    def summary(self) -> dict[str, Any]:
        ev = self.evaluator
        return {"metrics": self.scores, "metrics_real": self.floor, "per_class": ev.per_class if ev else {},
                "metric_settings": ev.settings if ev else {}}


def set_learning_rates(base_lrs: list[tuple[torch.optim.Optimizer, float]], schedule: str, step: int,
                       steps: int) -> None:
    """Both optimizers' rates for this step under the schedule (from the config's rates, not the
    optimizers': a resumed optimizer's state holds the decayed ones)."""
    if schedule == "constant":
        return
    factor = lr_factor(schedule, step, steps)
    for opt, lr in base_lrs:
        for group in opt.param_groups:
            group["lr"] = lr * factor


def training_batches(exp: Experiment, cfg: DictConfig, first: int, ranks: Any) -> Iterator[Any]:
    """The batch stream from G step `first` on: a function of (seed, batch number), so a resumed run
    continues it exactly; this rank's shard under torchrun; with labels for a conditional model."""
    t = cfg.train
    extra = {"rank": ranks.rank, "world": ranks.size} if ranks.active else {}
    if cfg.model.get("conditional"):
        extra["labels"] = True
    return exp.data.batches(t.batch_size, exp.device, seed=t.seed, start=(first - 1) * t.n_critic, **extra)


def fit(exp: Experiment, cfg: DictConfig, run_dir: Path, writer: Any,
        resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train up to cfg.train.steps G updates (continuing from `resume`, a checkpoint, when given);
    returns the run summary. SIGINT/SIGTERM end the step in flight, save last.pt and raise Interrupted."""
    t = cfg.train
    G, D = exp.G.train(), exp.D.train()
    ema = EMA(G, t.ema) if t.ema > 0 else None
    precision = Precision(t.precision, exp.device.type)
    first = restore(exp, resume, ema, precision) + 1 if resume else 1
    ranks = distributed.world()
    batches = training_batches(exp, cfg, first, ranks)
    if ranks.active:  # each rank its own noise, from a stream that depends on (seed, rank, step)
        torch.manual_seed(t.seed * 1_000_003 + ranks.rank * 10_007 + first)
    sampler = Sampler(exp, ema.G_ema if ema else G, t.n_samples, t.seed, run_dir / "samples")
    show_bar = t.progress and sys.stderr.isatty() and ranks.main
    from tqdm import tqdm

    bar = tqdm(total=t.steps, initial=first - 1, disable=not show_bar, unit="step", dynamic_ncols=True)
    skip = t.on_nan == "skip"
    scalars = ScalarLog(writer, bar, show_bar, first, t.steps, skip, ranks.main)
    evaluation = Evaluation(exp, cfg)
    saver = Checkpointer(exp, cfg, ema, precision, run_dir / "checkpoints", ranks.main)
    G_step, D_step = G, D  # what the training step runs: torch.compile'd views when train.compile

    def one_step(G_s: nn.Module, D_s: nn.Module, want_stats: bool, source: Iterator[Tensor]) -> dict[str, Tensor]:
        return exp.objective.step(G_s, D_s, exp.opt_G, exp.opt_D, source, t.n_critic, want_stats=want_stats,
                                  skip_nonfinite=skip, precision=precision,
                                  sync=distributed.average_gradients if ranks.active else None)

    rng_devices = [exp.device] if exp.device.type == "cuda" else []
    skipped_total = 0
    start = time.perf_counter()
    base_lrs = [(exp.opt_G, cfg.optimizer.lr_g), (exp.opt_D, cfg.optimizer.lr_d)]
    with StopFlag() as stop:
        for step in range(first, t.steps + 1):
            set_learning_rates(base_lrs, t.lr_schedule, step, t.steps)
            exp.objective.at_step(step, t.steps)  # step-dependent schedules (top-k's share)
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
            if log_now:  # on every rank the mean over the ranks, so every rank decides alike
                scalars(step, distributed.average_scalars(out) if ranks.active else out)
            # samples and metrics leave the training RNG stream untouched, so when they run
            # does not change the training (a resumed run stays bit-identical to a straight one)
            with torch.random.fork_rng(devices=rng_devices):
                # only rank 0 writes samples and evaluates
                if ranks.main and (step % t.sample_every == 0 or step == t.steps):
                    sampler(step, writer)
                if ranks.main and (step == t.steps or (t.eval_every and step % t.eval_every == 0)):
                    evaluation(step, sampler, writer)
            stopping = stop.signum is not None
            if ranks.active:  # all ranks stop at the same step: they agree at logging steps
                stopping = log_now and distributed.any_rank(stopping, exp.device)
            if stopping and step != t.steps:
                bar.close()
                saver.save(step, ("last.pt",))
                writer.flush()
                raise Interrupted(step, stop.signum or signal.SIGTERM)
            if t.ckpt_every and step % t.ckpt_every == 0 and step != t.steps:
                saver.save(step, (f"step_{step:06d}.pt", "last.pt"))
        bar.close()
        saver.save(t.steps, (f"step_{t.steps:06d}.pt", "last.pt"))
    wall = time.perf_counter() - start
    writer.flush()
    return {"status": "completed", "step": t.steps, "steps": t.steps, "resumed_from": first - 1 if resume else None,
            **split_losses(scalars.last), **evaluation.summary(), "skipped_updates": skipped_total,
            "wall_time_s": round(wall, 2), "steps_per_s": round((t.steps - first + 1) / wall, 3),
            "device": str(exp.device)}


def split_losses(last: dict[str, float]) -> dict[str, dict[str, float]]:
    """The last logged scalars as the summary's `losses` and `stats`."""
    return {"losses": {k: v for k, v in last.items() if k.startswith("loss/")},
            "stats": {k: v for k, v in last.items() if not k.startswith("loss/")}}


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """summary.json: the run's final step, losses, stats and time, for scripts and sweep tables."""
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
