"""train.lr_schedule: both learning rates over the run."""

from __future__ import annotations

import math

from ganrun.training.callbacks.base import Callback, Run

SCHEDULES = ("constant", "linear", "cosine")


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
    """Both optimizers' rates for each step: the built rates times lr_factor. The base rates are read when
    the run is set up, before a resume restores the optimizers (whose state holds decayed ones)."""

    def __init__(self, schedule: str = "constant"):
        if schedule not in SCHEDULES:
            raise ValueError(f"train.lr_schedule={schedule!r}: use {', '.join(SCHEDULES)}")
        self.schedule = schedule

    @property
    def active(self) -> bool:
        return self.schedule != "constant"

    def setup(self, run: Run) -> None:
        super().setup(run)
        self.base = [(opt, [group["lr"] for group in opt.param_groups]) for opt in (run.exp.opt_G, run.exp.opt_D)]

    def before_step(self, step: int) -> None:
        factor = lr_factor(self.schedule, step, self.run.steps)
        for opt, rates in self.base:
            for group, lr in zip(opt.param_groups, rates):
                group["lr"] = lr * factor
