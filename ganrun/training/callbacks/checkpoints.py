"""train.ckpt_every: checkpoints that hold everything a resumed run needs; the trackers' runs in them."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import Tensor, nn

from ganrun.artifacts import checkpoint
from ganrun.training.callbacks.base import Callback
from ganrun.training.callbacks.scalars import NonFiniteError

log = logging.getLogger(__name__)


def _is_finite(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


class Checkpoints(Callback):
    """Every `every` steps (0: only at the end) and at the end (rank 0): checkpoints/step_NNNNNN.pt and last.pt
    with the weights, optimizers, RNG, config, data description, gradient scalers and every other
    callback's state (it is called last); after an interrupt, last.pt. Refuses non-finite weights; a
    failed periodic write leaves the previous file and training goes on."""

    main_only = True
    last = True

    def __init__(self, every: int = 1000):
        if every < 0:
            raise ValueError(f"train.ckpt_every={every}: must be >= 0 (0 writes only the final checkpoint)")
        self.every = every

    def periodic(self, step: int) -> bool:
        return bool(self.every and step % self.every == 0 and step != self.run.steps)

    def reads_sampler(self, step: int) -> bool:
        return self.periodic(step)

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        if self.periodic(step):
            self.write(step, (f"step_{step:06d}.pt", "last.pt"))

    def on_end(self, step: int) -> None:
        self.write(step, (f"step_{step:06d}.pt", "last.pt") if step == self.run.steps else ("last.pt",))

    def write(self, step: int, names: tuple[str, ...]) -> None:
        run = self.run
        exp, G, D = run.exp, run.exp.G, run.exp.D
        if not (_is_finite(G) and _is_finite(D)):
            raise NonFiniteError(f"step {step}: G or D weights are not finite; kept the last good checkpoint")
        ckpt = {"format": checkpoint.FORMAT, "step": step, "G": G.state_dict(), "D": D.state_dict(),
                "opt_G": exp.opt_G.state_dict(), "opt_D": exp.opt_D.state_dict(), "rng": checkpoint.rng_state(),
                "config": run.config, "data": exp.data.describe(), "grad_scalers": exp.precision.state_dict(),
                "objective": exp.objective.state_dict(), "mode_seeking": list(exp.mode_seeking),
                "aux_classifier": exp.aux_classifier,
                "overrides": list(run.overrides), "cwd": os.getcwd()}  # relative data paths start there
        for callback in run.callbacks:
            if callback is not self:
                callback.save(ckpt)
        folder = run.run_dir / "checkpoints"
        for name in names:
            try:
                checkpoint.save(folder / name, ckpt)
            except OSError as e:  # disk full, permissions: the previous file is untouched
                message = (f"could not write {folder / name} at step {step} ({e.strerror or e}); "
                           f"the previous checkpoint is intact")
                if step == run.steps or names == ("last.pt",):
                    raise checkpoint.CheckpointError(message) from None
                log.error("%s; training goes on", message)


class TrackerRuns(Callback):
    """The trackers' run ids in every checkpoint and in summary.json, so a resumed run continues them."""

    main_only = True

    def __init__(self, writer: Any):
        self.writer = writer

    def save(self, ckpt: dict[str, Any]) -> None:
        ckpt["trackers"] = self.writer.run_ids()

    def summary(self) -> dict[str, Any]:
        ids = self.writer.run_ids()
        return {"trackers": ids} if ids else {}
