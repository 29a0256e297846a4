"""Image sets held in memory as uint8 tensors (MNIST, Fashion-MNIST, CIFAR-10, Stacked MNIST, the MNIST
sample). They are moved to the device once and batched by indexing, so the GPU never waits on a loader
(`on_device`: auto does so when the set takes under a quarter of the GPU's free memory; otherwise
batches are gathered on the host and copied through pinned memory)."""

from __future__ import annotations

import copy

from typing import Callable, Iterator

import torch
from torch import Tensor

from ganrun.data.base import (RESIDENT_SHARE, ImageSamples, OnDevice, check_batch, describe, epoch_batches, epoch_perm,
                              to_unit_range)
from ganrun.errors import DataError  # noqa: F401  (re-exported)


class TensorImages(ImageSamples):
    """A labelled image set held in memory as uint8 (N, C, H, W)."""

    pseudo = False
    modes = None

    def __init__(self, images: Tensor, labels: Tensor | None, name: str, n_classes: int | None = None,
                 on_device: OnDevice = "auto"):
        if on_device not in (True, False, "auto"):
            raise DataError(f"dataset.on_device={on_device!r}: use auto, true or false")
        self.images = images
        self.labels = labels
        self.name = name
        self.on_device = on_device
        self.shape = tuple(images.shape[1:])
        self.n_classes = n_classes or (int(labels.max()) + 1 if labels is not None and len(labels) else 0)
        self.digits: TensorImages | None = None
        self.make_split: Callable[[str], TensorImages] | None = None
        self.held_out: str | None = None
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return self.images.shape[0]

    def all_samples(self) -> Tensor:
        return self.images

    def with_labels(self, labels: Tensor) -> "TensorImages":
        """The same images (shared, not copied) with other class labels (train.clusters' clusters)."""
        other = copy.copy(self)
        other.labels = labels
        return other

    def describe(self) -> dict:
        return describe(self)

    def draw(self, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
        """n stored images (uint8; all of them when the set is smaller), drawn with `seed`, and their labels."""
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return self.images[idx], self.labels[idx] if self.labels is not None else None

    def resident(self, device: torch.device) -> bool:
        """Whether batches are indexed from a copy of the whole set on `device` (on_device, where
        auto means: always on the CPU; on CUDA when the set needs under RESIDENT_SHARE of free memory)."""
        if self.on_device != "auto":
            return bool(self.on_device)
        if device.type != "cuda":
            return True
        free, _ = torch.cuda.mem_get_info(device)
        return self.images.numel() * self.images.element_size() < RESIDENT_SHARE * free

    def batches(self, batch_size: int, device: torch.device, seed: int = 0, start: int = 0,
                rank: int = 0, world: int = 1, labels: bool = False) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
        """Endless shuffled batches in [-1, 1] on `device`, from batch number `start` on; the last
        partial batch of an epoch is dropped. rank / world: this rank's shard of every epoch.
        labels: (images, class labels) pairs, for conditional models. The batches are the same
        whether the set is resident on the device or gathered on the host (see `resident`)."""
        n = len(self)
        check_batch(batch_size, world, n, self.name)
        resident = self.resident(device)
        home = device if resident else torch.device("cpu")
        data = self.images.to(home)  # resident: once, the whole set lives on the device
        targets = self.labels.to(home) if labels else None
        pin = not resident and device.type == "cuda"
        for epoch, numbers in epoch_batches(n // batch_size, start, rank, world):
            perm = epoch_perm(n, seed, epoch).to(home, non_blocking=True)
            for i in numbers:
                idx = perm[i * batch_size:(i + 1) * batch_size]
                x, y = data[idx], targets[idx] if labels else None
                if not resident:  # uint8 through pinned memory: a quarter of float32's bytes, copied async
                    x = (x.pin_memory() if pin else x).to(device, non_blocking=True)
                    y = y.to(device, non_blocking=True) if labels else None
                yield (to_unit_range(x), y) if labels else to_unit_range(x)


# ---------------------------------------------------------------- MNIST-style IDX files

