"""train.sample_every: a picture of G's samples from a fixed z, as a PNG and in the trackers."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ganrun.data import pictures
from ganrun.models.common import asked_classes, class_inputs, eval_mode, noise
from ganrun.training.augment import unaugmented
from ganrun.training.callbacks.base import Callback, Run, every, fork_rng


class Previews(Callback):
    """Every `every` steps and at the end (rank 0): the run's sampler (G, or its EMA) on a fixed z, pictured
    by the dataset (a grid of images, one class per row for a conditional G; a scatter of 2-D points; the
    1-D game's figure with D), written to samples/step_NNNNNN.png and to the trackers."""

    main_only = True

    def __init__(self, every: int = 500, n: int = 64):
        if every < 1 or n < 1:
            raise ValueError(f"train.sample_every={every}, train.n_samples={n}: must be >= 1")
        self.every, self.n = every, n

    def setup(self, run: Run) -> None:
        super().setup(run)
        exp = run.exp
        n = exp.data.preview_size(self.n)
        self.labels, self.per_row = pictures.class_rows(asked_classes(exp.G), n)
        if self.labels is not None:  # a row per class; G's inputs: one of its clusters, for clusters within labels
            n, self.labels = len(self.labels), self.labels.to(exp.device)
            self.inputs = class_inputs(exp.G, self.labels, exp.seed + 1)
        gen = torch.Generator().manual_seed(exp.seed + 1)  # fixed z, the same on every device
        self.z = noise(exp.G, n, generator=gen).to(exp.device)
        self.out_dir = run.run_dir / "samples"
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def reads_sampler(self, step: int) -> bool:
        return every(step, self.every, self.run.steps)

    def after_step(self, step: int, out: dict[str, Tensor]) -> None:
        if self.reads_sampler(step):
            with fork_rng(self.run.exp):
                self.render(step)

    @torch.no_grad()
    def render(self, step: int) -> Path:
        G, exp = self.run.sampler, self.run.exp
        with eval_mode(G):  # BatchNorm uses running statistics, as `ganrun sample` will
            x = G(self.z) if self.labels is None else G(self.z, self.inputs)
        picture = exp.data.picture(x, self.labels, self.per_row, f"step {step}",
                                   game=lambda: (G, unaugmented(exp.D), exp.objective.probability))
        path = self.out_dir / f"step_{step:06d}.png"
        pictures.save_png(picture, path)
        self.run.writer.add_image("samples", picture, step)
        return path
