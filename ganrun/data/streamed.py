"""What the folder, ZIP and Hugging Face sets share: their images decoded on the fly (ganrun.data.imagefile)
by DataLoader worker processes, classes from sub-folders, and the dataset protocol's attributes."""

from __future__ import annotations

import copy
import logging
import math
import os
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor

import ganrun.data.decoded as decoded
import ganrun.data.imagefile as imagefile
from ganrun.data.base import Endless, ImageSamples, check_batch, describe, epoch_batches, epoch_perm, to_unit_range
from ganrun.data.tensors import TensorImages
from ganrun.errors import DataError  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
HELD_OUT = 0.2  # the share of a user's set held out as the metrics' reference (at most HELD_OUT_MAX images)
HELD_OUT_MAX = 10000
TRAIN_SPLIT_MAX = 20000  # the rest's images decoded for the floor and a feature network's training
SPLIT_SEED = 0  # fixed: every run and `ganrun eval` of the same set holds out the same images


def held_out_split(n: int) -> tuple[list[int], list[int]]:
    """(train, test) indices of a set of n: a fixed seeded share held out as the test split."""
    k = min(max(1, round(n * HELD_OUT)), HELD_OUT_MAX, n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    return sorted(perm[k:]), sorted(perm[:k])


def settle_workers(workers: Any) -> int:
    """dataset.workers as DataLoader processes: auto is 2, or none (decoding in the training process) where this
    process may run on one CPU only (taskset, a one-CPU container), where a second process would only share it."""
    if workers == "auto":
        affinity = getattr(os, "sched_getaffinity", None)  # not on macOS
        usable = len(affinity(0)) if affinity else os.cpu_count() or 1
        return 2 if usable > 1 else 0
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise DataError(f"dataset.workers={workers}: give a number of decoding processes >= 0 (0: decode in the "
                        f"training process), or auto")
    return workers


def check_channels(channels: int) -> None:
    if channels not in (0, 1, 3):
        raise DataError(f"dataset.channels={channels}: use 1 (grey), 3 (RGB) or 0 (RGB when any image is in colour, else grey)")


def subfolder_classes(paths: Sequence[Sequence[str]]) -> tuple[list[str], list[int] | None]:
    """Classes from relative paths' first-level sub-folders, when every image sits in one and there are at
    least two; else ([], None)."""
    tops = [p[0] if len(p) > 1 else None for p in paths]
    classes = sorted(set(tops)) if None not in tops and len(set(tops)) > 1 else []  # type: ignore[type-var]
    return classes, ([classes.index(t) for t in tops] if classes else None)  # type: ignore[arg-type]


def as_is(item: Any) -> Any:
    return item


class _Decoded(torch.utils.data.Dataset):
    """Item i: `read(items[i])` decoded by imagefile.decode in a DataLoader worker (with its label when asked)."""

    def __init__(self, items: list[Any], read: Callable[[Any], imagefile.Source], size: int, mode: str,
                 background: tuple[int, int, int], labels: list[int] | None):
        self.items, self.read, self.size, self.mode, self.background = items, read, size, mode, background
        self.labels = labels
        self.with_labels = False  # set by batches(labels=True)

    def __len__(self) -> int:
        return len(self.items)

    def image(self, i: int) -> Tensor:
        """Item i decoded: uint8 (C, size, size)."""
        return imagefile.decode(self.read(self.items[i]), self.size, self.mode, self.background)

    def __getitem__(self, i: int) -> Tensor | tuple[Tensor, int]:
        image = self.image(i)
        return (image, self.labels[i]) if self.with_labels else image  # type: ignore[index]


class StreamedImages(ImageSamples):
    """What the folder, ZIP and Hugging Face sets share: their images decoded (imagefile.decode) by DataLoader
    worker processes, and the Dataset protocol's attributes. A set that fits in decoded.MEMORY_MAX is decoded
    once, held in memory and served as TensorImages serves (the same batches), and cached on disk so the next
    run skips both the scan and the decoding (data.decoded); a larger one is decoded batch by batch. A
    subclass finds its images, scans them (`_scan`: imagefile.scan, or the cache) and hands them to `_serve`."""

    pseudo = False
    modes = None
    classes: list[str]
    _memory: TensorImages | None = None  # the decoded set, when it fits in memory
    _cached: dict[str, Any] | None = None
    _cache_key: tuple[str, str] | None = None

    def _scan(self, name: str, fingerprint: Any, scan: Callable[[], imagefile.Scan],
              store: Callable[[Any], str] = str, restore: Callable[[str], Any] = str, **settings: Any) -> imagefile.Scan:
        """The scan of the set's files: from the decoded cache when these files (fingerprint: their names,
        sizes and times) were decoded with these settings before, else `scan()`. store / restore: an item
        as the cache writes it, and back."""
        self._cache_key, self._store = (name, decoded.key(fingerprint, **settings)), store
        self._cached = decoded.load(*self._cache_key)
        if self._cached is None:
            return scan()
        found = self._cached["scan"]
        return found._replace(items=[restore(i) for i in found.items])

    def _hold(self, found: imagefile.Scan) -> None:
        """Hold the decoded set in memory when it fits (from the cache, or decoded now and cached)."""
        nbytes = len(found.items) * math.prod(self.shape)
        cached, self._cached = self._cached, None
        if cached is not None and tuple(cached["images"].shape[1:]) == self.shape:
            images, how = cached["images"], "read from the cache"
        elif nbytes <= decoded.MEMORY_MAX:
            images = self._decode_files(range(len(self)))
            how = "decoded once"
            if self._cache_key is not None:
                decoded.save(*self._cache_key, found, images, self._store)
                how += f", cached in {decoded.cache_root() / 'decoded'}"
        else:
            log.info("%s: %.1f GB decoded: streamed from the files", self.name, nbytes / 1e9)
            return
        self._memory = TensorImages(images, self.labels, self.name, self.n_classes)
        log.info("%s: held in memory (%.1f MB, %s)", self.name, nbytes / 1e6, how)

    def _serve(self, name: str, found: imagefile.Scan, read: Callable[[Any], imagefile.Source],
               labels: list[int] | None, classes: list[str], image_size: int, background: Any, workers: Any,
               where: str, n_classes: int = 0) -> None:
        self.skipped = found.skipped
        if found.skipped:
            shown = "; ".join(found.skipped[:10]) + (f"; and {len(found.skipped) - 10} more" if len(found.skipped) > 10 else "")
            log.warning("%s: skipped %d file(s) that are not readable images: %s", where, len(found.skipped), shown)
        if not found.items:
            raise DataError(f"{where} holds no readable images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.name = name
        self.shape = (found.channels, image_size, image_size)
        self.classes = classes
        self.labels = torch.tensor(labels) if labels is not None else None
        self.n_classes = n_classes or (int(self.labels.max()) + 1 if self.labels is not None else 0)
        self.digits, self._splits = None, {}
        n = len(found.items)
        self.make_split = self.split if n > 1 else None
        self.held_out = (f"{len(held_out_split(n)[1]):,} of {n:,} images held out as the reference "
                         f"(seed {SPLIT_SEED}); training uses all of them") if n > 1 else None
        self.workers = settle_workers(workers)
        mode = "L" if found.channels == 1 else "RGB"
        self._ds = _Decoded(found.items, read, image_size, mode, imagefile.parse_background(background), labels)
        log.info("%s: %d images: %s", name.replace(":", " ", 1), len(found.items),
                 imagefile.summary(found, background))
        self._hold(found)

    def __len__(self) -> int:
        return len(self._ds)

    def draw(self, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
        """n images (uint8; all of them when the set is smaller), drawn with `seed` and decoded, and their labels."""
        if self._memory is not None:
            return self._memory.draw(n, seed)
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].tolist()
        decoded = torch.stack([self._ds.image(i) for i in idx])
        return decoded, self.labels[idx] if self.labels is not None else None

    def all_samples(self) -> Tensor:
        """Every image, uint8 (N, C, H, W), in one decoding pass by the DataLoader workers."""
        return self.decode(range(len(self)))

    def decode(self, idx: Sequence[int]) -> Tensor:
        """The images at `idx`, uint8 (N, C, H, W)."""
        if self._memory is not None:
            return self._memory.images[list(idx)]
        return self._decode_files(idx)

    def _decode_files(self, idx: Sequence[int]) -> Tensor:
        """The images at `idx` decoded from their files by the DataLoader workers."""
        ds = copy.copy(self._ds)
        ds.with_labels = False
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, list(idx)), batch_size=256,
                                             num_workers=self.workers)
        return torch.cat(list(loader))

    def split(self, which: str) -> TensorImages:
        """The held-out "test" share of the set (held_out_split), or the "train" rest (at most
        TRAIN_SPLIT_MAX images of it), decoded into memory once: the metrics' reference and floor."""
        if which not in self._splits:
            train, test = held_out_split(len(self))
            idx = test if which == "test" else train[:TRAIN_SPLIT_MAX]
            labels = self.labels[idx] if self.labels is not None else None
            self._splits[which] = TensorImages(self.decode(idx), labels, f"{self.name} {which}", self.n_classes,
                                               on_device=False)
        return self._splits[which]

    def describe(self) -> dict[str, Any]:
        return describe(self)

    def with_labels(self, labels: Tensor) -> "StreamedImages":
        """The same files with other class labels (train.clusters' clusters), served by its decoder."""
        other = copy.copy(self)
        other._ds = copy.copy(self._ds)
        other._ds.labels = labels.tolist()
        other.labels = labels
        if self._memory is not None:
            other._memory = self._memory.with_labels(labels)
        return other

    def batches(self, batch_size: int, device: torch.device, seed: int = 0, start: int = 0,
                rank: int = 0, world: int = 1, labels: bool = False) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
        """Endless shuffled batches (from memory, or decoded by DataLoader workers), from batch number `start` on;
        rank / world: this rank's shard of every epoch; labels: (images, class labels) pairs. One
        DataLoader serves every epoch (its batch sampler never ends), so the workers start once and
        keep prefetching; on CUDA the batches come through pinned memory with non-blocking copies."""
        if self._memory is not None:
            yield from self._memory.batches(batch_size, device, seed, start, rank, world, labels)
            return
        n = len(self)
        check_batch(batch_size, world, n, self.name)

        def order() -> Iterator[list[int]]:
            for epoch, numbers in epoch_batches(n // batch_size, start, rank, world):
                perm = epoch_perm(n, seed, epoch).tolist()
                yield from (perm[i * batch_size:(i + 1) * batch_size] for i in numbers)

        loader = torch.utils.data.DataLoader(self._ds, batch_sampler=Endless(order), num_workers=self.workers,
                                             pin_memory=device.type == "cuda",
                                             prefetch_factor=4 if self.workers else None)
        self._ds.with_labels = labels
        for batch in loader:
            if labels:
                yield to_unit_range(batch[0].to(device, non_blocking=True)), batch[1].to(device, non_blocking=True)
            else:
                yield to_unit_range(batch.to(device, non_blocking=True))


