"""fit(experiment, steps, callbacks): the training loop. Each G step: the callbacks' before_step, the
objective's step (n_critic D updates, then one G update), the callbacks' after_step (ganrun.training.callbacks:
schedule, EMA, logging, previews, evaluation, checkpoints); plus resume, torch.compile's first step and
signal handling. It reads no config: the experiment and the callbacks hold their own settings.

The step returns tensors; only logging steps turn them into Python floats, because every
.item() waits for the GPU to finish (a host-device sync point).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from ganrun.artifacts import checkpoint
from ganrun.training import distributed
from ganrun.training.callbacks import Callback, NonFiniteError
from ganrun.training.experiment import Experiment

log = logging.getLogger(__name__)

__all__ = ["fit", "first_step", "write_summary", "Interrupted", "NonFiniteError", "StopFlag", "restore"]


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


def first_step(resume: dict[str, Any] | None) -> int:
    """The first G step a run trains: 1, or the one after a resumed checkpoint's."""
    return int(resume["step"]) + 1 if resume else 1


def restore(exp: Experiment, ckpt: dict[str, Any], callbacks: list[Callback]) -> int:
    """Load a checkpoint's weights, optimizer, RNG and callback states into a built experiment; returns its step."""
    for name, module in (("G", exp.G), ("D", exp.D)):
        mismatch = checkpoint.first_mismatch(module, ckpt[name])
        if mismatch:
            raise checkpoint.CheckpointError(f"resume: {name} does not fit the checkpoint: {mismatch}")
        module.load_state_dict(ckpt[name])
    exp.opt_G.load_state_dict(ckpt["opt_G"])
    exp.opt_D.load_state_dict(ckpt["opt_D"])
    exp.objective.load_state_dict(ckpt.get("objective", {}))
    for callback in callbacks:
        callback.restore(ckpt)
    exp.precision.load_state_dict(ckpt.get("grad_scalers", {}))
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


def fit(exp: Experiment, steps: int, callbacks: list[Callback], resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train up to G step `steps` (continuing from `resume`, a checkpoint, when given) with callbacks already
    set up for the run; returns the summary. The step is the objective's; everything around it is a
    callback. SIGINT/SIGTERM end the step in flight, end the callbacks (the checkpoints write last.pt)
    and raise Interrupted."""
    G, D = exp.G.train(), exp.D.train()
    ranks = distributed.world()
    first = first_step(resume)
    if resume:
        restore(exp, resume, callbacks)
    batches = exp.batches(first, ranks.rank, ranks.size)
    if ranks.active:  # each rank its own noise, from a stream that depends on (seed, rank, step)
        torch.manual_seed(exp.seed * 1_000_003 + ranks.rank * 10_007 + first)
    G_step, D_step = G, D  # what the training step runs: torch.compile'd views when exp.compile

    def one_step(G_s: nn.Module, D_s: nn.Module, want_stats: bool, source: Iterator[Tensor]) -> dict[str, Tensor]:
        return exp.objective.step(G_s, D_s, exp.opt_G, exp.opt_D, source, want_stats, exp.precision,
                                  sync=distributed.average_gradients if ranks.active else None)

    start = time.perf_counter()
    with StopFlag() as stop:
        for step in range(first, steps + 1):
            for c in callbacks:
                c.before_step(step)
            exp.objective.at_step(step, steps)  # step-dependent schedules (top-k's share)
            want_stats = any(c.wants_stats(step) for c in callbacks)
            if exp.compile and step == first:  # a failed compile retries eagerly on the same batches
                head = [next(batches) for _ in range(exp.n_critic)]
                G_step, D_step, out = compiled_step(G, D, (exp.opt_G, exp.opt_D),
                                                    lambda G_s, D_s: one_step(G_s, D_s, want_stats, iter(head)))
            else:
                out = one_step(G_step, D_step, want_stats, batches)
            for c in callbacks:
                c.after_step(step, out)
            stopping = stop.signum is not None
            if ranks.active:  # all ranks stop at the same step: they agree on the steps with statistics
                stopping = want_stats and distributed.any_rank(stopping, exp.device)
            if stopping and step != steps:
                for c in callbacks:
                    c.on_end(step)
                raise Interrupted(step, stop.signum or signal.SIGTERM)
        for c in callbacks:
            c.on_end(steps)
    wall = time.perf_counter() - start
    summary: dict[str, Any] = {"status": "completed", "step": steps, "steps": steps,
                               "resumed_from": first - 1 if resume else None}
    for c in callbacks:
        summary.update(c.summary())
    return {**summary, "wall_time_s": round(wall, 2), "steps_per_s": round((steps - first + 1) / wall, 3),
            "device": str(exp.device)}


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """summary.json: the run's final step, losses, stats and time, for scripts and sweep tables."""
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
