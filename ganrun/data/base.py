"""The dataset protocol every set follows, and what the formats share: images served in [-1, 1], a batch
order that is a function of (seed, batch number) so a resumed run continues it exactly, the shard of
each rank, resizing, and the default folder for downloads."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterator, Literal, Optional, Protocol, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

import ganrun.data.pictures as pictures
from ganrun.errors import DataError  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

Split = Literal["train", "test"]
OnDevice = Union[bool, Literal["auto"]]
RESIDENT_SHARE = 0.25  # on_device=auto: keep a set on the GPU when it needs under this share of free memory


class SampleSpace(Protocol):
    """What a dataset's samples look like: how G's output is pictured and written to a file. Every dataset
    is one; `space(description, node)` gives one from a checkpoint without loading the data."""

    shape: tuple[int, ...]
    pixels: bool  # images (C, H, W), which interpolate, write one PNG each and take augmentation; else points

    def preview_size(self, n: int) -> int:
        """How many samples a picture of `n` requested ones draws (a scatter plot needs thousands)."""

    def picture(self, samples: Tensor, labels: Optional[Tensor] = None, per_row: int = 0, title: str = "",
                game: Optional[Callable[[], tuple[Any, Any, bool]]] = None) -> Tensor:
        """A (3 or 1, H, W) picture in [0, 1] of samples in G's range: a grid (one class per row with
        labels and per_row), a scatter plot over real points, or for 1-D data the GAN paper's figure of the
        game, drawn from what `game()` gives: (G, D, whether D's output is a probability)."""

    def to_array(self, samples: Tensor) -> Any:
        """What an .npy of samples holds: images in [0, 1], points as they are."""


class Dataset(SampleSpace, Protocol):
    """What the loop, the previews, the metrics, clusters and checkpoints read from a dataset (and nothing else).

    shape: one sample's shape, (C, H, W) or (d,). name: for logs and metric settings.
    labels / n_classes: class labels of the stored samples (None / 0 when unlabelled); pseudo: the classes
    are train.clusters' clusters, not labels. modes: a mixture's mode centres (the 2-D protocol's metrics),
    else None. digits: Stacked MNIST's one-digit source set (the metrics classify each channel); None elsewhere.
    make_split: builds the same set's "train" or "test" split (the metrics' reference); None when it has none.
    held_out: when the "test" split is carved out of the set itself (a user's folder, ZIP or HF set), what
    it is ("757 of 3,781 images, seeded"); the real floor is then drawn from the rest. None otherwise.
    skipped: files that could not be read ("name (why)").
    """

    name: str
    labels: Optional[Tensor]
    n_classes: int
    pseudo: bool
    modes: Optional[Tensor]
    digits: Optional["Dataset"]
    make_split: Optional[Callable[[str], "Dataset"]]
    held_out: Optional[str]
    skipped: list[str]

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, device: torch.device, seed: int = 0, start: int = 0, rank: int = 0,
                world: int = 1, labels: bool = False) -> Iterator[Any]:
        """Endless batches on `device` from batch number `start` on, a function of (seed, number);
        labels=True: (samples, class labels) pairs."""

    def draw(self, n: int, seed: int) -> tuple[Tensor, Optional[Tensor]]:
        """n real samples as stored (uint8 images, float points) drawn with `seed`, and their labels."""

    def all_samples(self) -> Tensor:
        """Every stored sample (uint8 images: one decoding pass for a streamed set)."""

    def describe(self) -> dict[str, Any]:
        """What a checkpoint keeps of the data, so G can be rebuilt and its samples pictured without it."""


class ImageSamples:
    """The SampleSpace of image sets (uint8 (C, H, W) stored, G's [-1, 1] output): grids and PNGs."""

    pixels = True
    shape: tuple[int, ...]

    def preview_size(self, n: int) -> int:
        return n

    def picture(self, samples: Tensor, labels: Optional[Tensor] = None, per_row: int = 0, title: str = "",
                game: Optional[Callable[[], tuple[Any, Any, bool]]] = None) -> Tensor:
        if labels is not None and per_row:
            return pictures.class_grid(samples, labels, per_row)
        return pictures.grid(samples, per_row)

    def to_array(self, samples: Tensor) -> Any:
        return pictures.to_unit(samples).numpy()


class ImageShape(ImageSamples):
    """The SampleSpace of a checkpoint's image data, without the data."""

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(shape)


def class_names(data: Any) -> list[str]:
    """A labelled set's class names in class order, where its labels came with names (sub-folders, a Hugging
    Face label column, a ZIP's dataset.json with "classes"); [] where the classes are bare numbers (MNIST)."""
    names = getattr(data, "classes", None)
    return [str(n) for n in names] if isinstance(names, list) and data.n_classes and len(names) == data.n_classes else []


def named_classes(names: list[str], most: int = 12) -> str:
    """"0 cat, 1 dog, ...": each class's number beside its name, the first `most` of them."""
    listed = ", ".join(f"{i} {n}" for i, n in enumerate(names[:most]))
    return listed + (f", ... ({len(names)} in all)" if len(names) > most else "")


def describe(data: Any, **extra: Any) -> dict[str, Any]:
    """A dataset's checkpoint entry: {"kind": "image" | "points", "shape", "n_classes", ...}; a labelled set's
    also has "class_counts" (images per class: a sample set for metrics draws its classes in that mix) and,
    where its classes have names, "class_names" (`ganrun sample classes=[NAME]` takes them)."""
    labels = getattr(data, "labels", None)
    counts = {"class_counts": torch.bincount(labels.long(), minlength=data.n_classes).tolist()} \
        if labels is not None and data.n_classes else {}
    names = class_names(data)
    return {"kind": "image" if data.pixels else "points", "shape": list(data.shape), "n_classes": data.n_classes,
            **counts, **({"class_names": names} if names else {}), **extra}


def space(description: dict[str, Any], node: Any) -> SampleSpace:
    """The SampleSpace of a checkpoint's data: its image shape (nothing loaded), or the mixture its dataset
    node builds (cheap, and needed to picture points over it)."""
    if description.get("kind", "image") == "image":
        return ImageShape(description["shape"])
    from omegaconf import OmegaConf

    from ganrun.config.targets import instantiate

    return instantiate(OmegaConf.create(node), "dataset")


def to_unit_range(batch: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1], G's output range (training batches, metrics, floors)."""
    return batch.float().div_(127.5).sub_(1.0)


def epoch_perm(n: int, seed: int, epoch: int) -> Tensor:
    """The shuffled order of epoch `epoch`: a function of (seed, epoch) alone, so a resumed run can
    jump to any batch without replaying the ones before it."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


class Endless:
    """A batch sampler that never ends (DataLoader only needs it iterable)."""

    def __init__(self, make: Any):
        self.make = make

    def __iter__(self) -> Iterator[list[int]]:
        return self.make()


def check_batch(batch_size: int, world: int, n: int, name: str) -> None:
    if batch_size * world > n:
        ranks = f" x {world} ranks" if world > 1 else ""
        raise DataError(f"train.batch_size={batch_size}{ranks} is larger than dataset {name} ({n} images); lower it")


def epoch_batches(per_epoch: int, start: int, rank: int, world: int) -> Iterator[tuple[int, list[int]]]:
    """(epoch, its batch numbers) for one rank: global batch j = k * world + rank is the rank's
    k-th batch (its shard), from k = start on; world = 1 is the plain sequence."""
    first = start * world + rank
    epoch = first // per_epoch
    while True:
        lo = max(first, epoch * per_epoch)
        lo += (rank - lo) % world  # the rank's first global batch at or after lo
        yield epoch, [j - epoch * per_epoch for j in range(lo, (epoch + 1) * per_epoch, world)]
        epoch += 1


def resize(images: Tensor, size: int) -> Tensor:
    """Resize a uint8 (N, C, H, W) tensor to size x size (antialiased bilinear), in chunks."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = [F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
           .round_().clamp_(0, 255).to(torch.uint8) for chunk in images.split(4096)]
    return torch.cat(out)


def last_line(error: Exception) -> str:
    """The line of a multi-line torchvision error that says what went wrong (its last)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[-1]


def default_root() -> str:
    return os.environ.get("GANRUN_DATA", "~/.cache/ganrun/data")


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


