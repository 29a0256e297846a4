"""A user's set decoded once: the scan (which files are readable images, of what kinds) and every image
decoded at the run's size, kept on disk under GANRUN_CACHE/decoded and keyed by the files' names, sizes
and modification times and the decoding settings. The next run on the same files starts from it without
opening an image; any change to a file, or a cache file that cannot be read, means decoding again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

import ganrun.data.imagefile as imagefile
from ganrun.data.base import first_line

log = logging.getLogger(__name__)

VERSION = 1  # in the key: a change to imagefile.decode's output never reads old caches
MEMORY_MAX = 2 * 1024 ** 3  # decoded bytes up to which a set is held in memory (and cached); above: streamed


def cache_root() -> Path:
    """ganrun's cache folder (GANRUN_CACHE, default ~/.cache/ganrun)."""
    return Path(os.path.expanduser(os.environ.get("GANRUN_CACHE", "~/.cache/ganrun")))


def key(fingerprint: Any, **settings: Any) -> str:
    """The cache key of files described by `fingerprint` (JSON-able) decoded with `settings`."""
    text = json.dumps([VERSION, fingerprint, settings], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def file_fingerprint(paths: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, modification time) of each file: what changes when a file is replaced or edited."""
    stats = [(str(p), p.stat()) for p in paths]
    return [(name, s.st_size, s.st_mtime_ns) for name, s in stats]


def path(name: str, cache_key: str) -> Path:
    return cache_root() / "decoded" / f"{name.replace(':', '-').replace('/', '-')}-{cache_key}.pt"


def load(name: str, cache_key: str) -> dict[str, Any] | None:
    """The cached scan and images, or None (not cached, or unreadable: decoded again)."""
    file = path(name, cache_key)
    if not file.is_file():
        return None
    try:
        entry = torch.load(file, weights_only=True)
        scan = imagefile.Scan(entry["items"], Counter(entry["kinds"]), entry["channels"],
                              entry["skipped"], entry["transparent"])
        images = entry["images"]
        if not (isinstance(images, Tensor) and images.dtype == torch.uint8 and len(images) == len(scan.items)):
            raise ValueError("images do not match the scan")
    except Exception as e:  # noqa: BLE001 - a cut-short, foreign or altered file: never trusted
        log.warning("the decoded-image cache %s is unreadable (%s): decoding again", file, first_line(e)[:100])
        return None
    return {"scan": scan, "images": images}


def save(name: str, cache_key: str, scan: imagefile.Scan, images: Tensor, item_text: Callable[[Any], str]) -> None:
    """Write the scan and the images (atomically: a reader never sees half a file). A cache that cannot be
    written (read-only home, full disk) only costs the next run its start-up time."""
    file = path(name, cache_key)
    entry = {"items": [item_text(i) for i in scan.items], "kinds": dict(scan.kinds), "channels": scan.channels,
             "skipped": list(scan.skipped), "transparent": scan.transparent, "images": images.contiguous()}
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        part = file.with_suffix(f".part{os.getpid()}")
        torch.save(entry, part)
        part.replace(file)
    except OSError as e:
        log.warning("could not cache the decoded images in %s (%s)", file.parent, e.strerror or e)
