"""Callbacks: everything fit() does around the training step, one object per job, each built from its
config node (configs/callbacks/: the built-in ones take their settings from train.*) and handed the run
at setup (base.Run). A new per-step technique is a class here, a YAML node and a test; the loop does not
change (docs/contributing.md)."""

from ganrun.training.callbacks.ada import AdaptiveAugment
from ganrun.training.callbacks.base import Callback, Run, every, fork_rng
from ganrun.training.callbacks.checkpoints import Checkpoints, TrackerRuns
from ganrun.training.callbacks.ema import EMA, ema_decay
from ganrun.training.callbacks.evaluation import Evaluation
from ganrun.training.callbacks.previews import Previews
from ganrun.training.callbacks.scalars import NonFiniteError, ScalarLog, SkippedUpdates
from ganrun.training.callbacks.schedule import LRSchedule, lr_factor

__all__ = ["AdaptiveAugment", "Callback", "Run", "every", "fork_rng", "Checkpoints", "TrackerRuns", "EMA",
           "ema_decay", "Evaluation", "Previews", "NonFiniteError", "ScalarLog", "SkippedUpdates", "LRSchedule",
           "lr_factor"]
