"""train.eval_every: the quality metrics during and at the end of a run."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ganrun.metrics.evaluator import Evaluator
from ganrun.training.augment import unaugmented
from ganrun.training.callbacks.base import Callback, every, fork_rng


class Evaluation(Callback):
    """Every `every` steps (0: only) at the end (rank 0): the run's sampler scored by the metrics that fit its
    dataset (ganrun.metrics.evaluator, built at the first use: it may train a classifier), n samples, with
    D's rejection sampling too when `drs`. Scores and real data's floor go to the trackers (eval/,
    eval_real/) and the summary."""

    main_only = True

    def __init__(self, every: int = 0, n: int = 5000, drs: bool = False):
        if every < 0 or n < 1:
            raise ValueError(f"train.eval_every={every} (>= 0; 0 scores only at the end), train.eval_n={n} (>= 1)")
        self.every, self.n, self.drs = every, n, drs
        self.evaluator: Evaluator | None = None
        self.scores: dict[str, float] = {}
        self.floor: dict[str, float] = {}

    def reads_sampler(self, step: int) -> bool:
        return every(step, self.every, self.run.steps)

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        if self.reads_sampler(step):
            with fork_rng(self.run.exp):
                self.evaluate(step)

    def evaluate(self, step: int) -> None:
        exp = self.run.exp
        self.evaluator = self.evaluator or Evaluator(exp.data, self.n)
        self.scores, self.floor = self.evaluator(self.run.sampler, seed=exp.seed,
                                                 D=unaugmented(exp.D) if self.drs else None)
        for k, v in self.scores.items():
            self.run.writer.add_scalar(f"eval/{k}", v, step)
        for k, v in self.floor.items():  # real data scored alike: the floor beside each curve
            self.run.writer.add_scalar(f"eval_real/{k}", v, step)

    def summary(self) -> dict[str, Any]:
        ev = self.evaluator
        return {"metrics": self.scores, "metrics_real": self.floor, "per_class": ev.per_class if ev else {},
                "metric_settings": ev.settings if ev else {}}
