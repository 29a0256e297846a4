"""The step's numbers: logged, checked for NaN and shown on a terminal (ScalarLog), counted when skipped."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from torch import Tensor

from ganrun.training import distributed
from ganrun.training.callbacks.base import Callback, Run, every
from ganrun.training.health import Monitor

log = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """A loss or weight became NaN/inf; the last good checkpoint is kept."""


class ScalarLog(Callback):
    """Every `every` steps (train.log_every) and at the end: the host sync (the mean over the ranks under
    torchrun), the non-finite check (on_nan=stop raises NonFiniteError), the scalars to the trackers,
    health warnings and the latest losses, on a tqdm bar (rank 0, `progress`, on a terminal) or as a log
    line; the last values go to the summary."""

    def __init__(self, every: int = 50, on_nan: str = "stop", progress: bool = True):
        if every < 1:
            raise ValueError(f"train.log_every={every}: must be >= 1")
        if on_nan not in ("stop", "skip"):
            raise ValueError(f"train.on_nan={on_nan!r}: use stop or skip")
        self.every, self.skip, self.progress = every, on_nan == "skip", progress
        self.last: dict[str, float] = {}
        self.monitor = Monitor()

    def setup(self, run: Run) -> None:
        import sys

        from tqdm import tqdm

        super().setup(run)
        self.tick, self.tick_step = time.perf_counter(), run.first - 1
        show = self.progress and run.ranks.main and sys.stderr.isatty()
        self.bar = tqdm(total=run.steps, initial=run.first - 1, disable=not show, unit="step", dynamic_ncols=True)

    def wants_stats(self, step: int) -> bool:
        return every(step, self.every, self.run.steps)

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        self.bar.update(1)
        if not self.wants_stats(step):
            return
        ranks = self.run.ranks
        if ranks.active:  # every rank the same mean, so every rank decides alike
            out = distributed.average_scalars(out)
        now = time.perf_counter()
        last = {k: float(v) for k, v in out.items()}  # the host sync, once per `every` steps
        last["steps_per_s"] = (step - self.tick_step) / max(now - self.tick, 1e-9)
        self.last, self.tick, self.tick_step = last, now, step
        bad = [k for k, v in self.losses().items() if not math.isfinite(v)]
        if bad and not self.skip:
            raise NonFiniteError(f"step {step}: {bad[0]} = {last[bad[0]]}; lower the learning rates "
                                 f"(optimizer.lr_g / lr_d) or change the loss; kept the last good checkpoint")
        for k, v in last.items():
            self.run.writer.add_scalar(k, v, step)
        if ranks.main:
            self.monitor(step, last)
            self.show(step)

    def show(self, step: int) -> None:
        """The latest losses: on the progress bar when there is one, else a log line."""
        losses = {k.split("/")[1]: v for k, v in self.losses().items()}
        if not self.bar.disable:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
            return
        log.info("step %d/%d  %s  %.1f steps/s", step, self.run.steps,
                 "  ".join(f"loss/{k} {v:.4f}" for k, v in losses.items()), self.last["steps_per_s"])

    def on_end(self, step: int) -> None:
        self.bar.close()

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
