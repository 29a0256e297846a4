"""The experiment: everything a training run needs, as `build` made it from one config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from ganrun.data import Dataset
from ganrun.training.precision import Precision


@dataclass
class Experiment:
    """Everything a training run needs, built from one config."""

    data: Dataset
    G: nn.Module
    D: nn.Module
    objective: Any  # what one training step does: objectives.Adversarial, or VAEObjective for model=vae
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    device: torch.device
    precision: Precision
    batch_size: int
    n_critic: int
    seed: int  # seeds the data order, and the previews' and metrics' noise
    compile: bool  # torch.compile G and D for the training step
    model: dict[str, Any]  # the model node as built (model.conditional settled): what checkpoints keep
    mode_seeking: tuple[float, int] = (0.0, 0)  # train.mode_seeking as settled (weight, until): checkpoints keep it
    aux_classifier: float = 0.0  # train.aux_classifier as settled (the weight): checkpoints keep it

    def batches(self, first: int, rank: int = 0, world: int = 1) -> Iterator[Any]:
        """The batch stream from G step `first` on: a function of (seed, batch number), so a resumed run
        continues it exactly; the rank's shard under torchrun; with labels for a conditional model."""
        return self.data.batches(self.batch_size, self.device, seed=self.seed, start=(first - 1) * self.n_critic,
                                 rank=rank, world=world, labels=bool(self.G.n_classes))
