"""What a callback is, and what it is given when a run starts.

fit() (ganrun.training.loop) is the loop: per G step it calls `before_step` on every callback, runs the
objective's step, then `after_step` with the step's scalar tensors, in list order; after the last step
(or the step an interrupt arrived in), `on_end`. A callback is built from its config node with its own
settings only (configs/callbacks/), then `setup(run)` hands it the run: the experiment, the run folder,
the trackers' writer and the steps. A checkpoint asks each callback to `save` its state into it, and
resuming calls `restore`. The one rank-0 gate: a callback with `main_only = True` exists on rank 0 only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganrun.training.experiment import Experiment
from ganrun.training.distributed import World


@dataclass
class Run:
    """What every callback gets at setup: the experiment and the run it is part of."""

    exp: Experiment
    run_dir: Path
    writer: Any  # the trackers (add_scalar, add_image, flush)
    first: int  # the first step this process trains: 1, or a resumed checkpoint's step + 1
    steps: int  # the last step
    ranks: World
    config: dict[str, Any]  # the resolved config as plain containers: what a checkpoint keeps
    overrides: list[str]  # what the run was composed from: a checkpoint keeps them for resume=
    callbacks: list["Callback"] = field(default_factory=list)  # all of them, in call order
    sampler: nn.Module | None = None  # the G previews and metrics draw from (G, or the EMA callback's average)


def every(step: int, interval: int, last: int) -> bool:
    """Whether `step` is one of every `interval` steps (0: none) or the last one."""
    return step == last or bool(interval and step % interval == 0)


class Callback:
    """Base class: every hook does nothing. `main_only` callbacks exist on rank 0 only; a `last` one is called
    after all others (the checkpoints, which keep the others' state)."""

    main_only = False
    last = False
    run: Run

    @property
    def active(self) -> bool:
        """Whether its settings turn it on (an EMA with decay 0 is off); build drops inactive ones."""
        return True

    def setup(self, run: Run) -> None:
        """Take the run, before the first step (and before a resume restores the state)."""
        self.run = run

    def wants_stats(self, step: int) -> bool:
        """Whether step `step` should compute the step's statistics for this callback (a host sync)."""
        return False

    def reads_sampler(self, step: int) -> bool:
        """Whether this callback draws from the run's sampler (or saves it) after step `step`."""
        return False

    def before_step(self, step: int) -> None:
        """Before G step `step` (1-based) runs."""

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        """After G step `step`, with its scalar tensors (statistics only on steps some callback wants them)."""

    def on_end(self, step: int) -> None:
        """After the last step, or after the step a signal stopped the run at."""

    def save(self, ckpt: dict[str, Any]) -> None:
        """Add this callback's state to a checkpoint being written."""

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Take this callback's state back from a checkpoint when resuming."""

    def summary(self) -> dict[str, Any]:
        """Keys this callback adds to summary.json."""
        return {}


def fork_rng(exp: Experiment) -> Any:
    """Previews and metrics leave the training RNG streams untouched, so when they run does not change
    the training (a resumed run stays bit-identical to a straight one)."""
    return torch.random.fork_rng(devices=[exp.device] if exp.device.type == "cuda" else [])
