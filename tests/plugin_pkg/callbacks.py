"""A callback written outside ganrun, as a contributor adds one: a class, its settings and a YAML node."""

from __future__ import annotations

from typing import Any

from ganrun.training.callbacks import Callback


class Counter(Callback):
    """Counts steps (and the steps it asked statistics for), keeps its count in checkpoints."""

    made: list["Counter"] = []  # every instance, for the tests to read

    def __init__(self, every: int = 2):
        self.every = every
        self.before: list[int] = []
        self.after: list[tuple[int, bool]] = []
        self.ended: int | None = None
        self.restored: int | None = None
        Counter.made.append(self)

    def wants_stats(self, step: int) -> bool:
        return step % self.every == 0

    def before_step(self, step: int) -> None:
        self.before.append(step)

    def after_step(self, step: int, out: dict) -> None:
        self.after.append((step, "grad_norm/D" in out))

    def on_end(self, step: int) -> None:
        self.ended = step

    def save(self, ckpt: dict[str, Any]) -> None:
        ckpt["counter"] = len(self.after)

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.restored = ckpt["counter"]

    def summary(self) -> dict[str, Any]:
        return {"counted": len(self.after)}
