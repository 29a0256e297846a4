"""`dataset=folder`: every image under a folder, recursively; sub-folders are classes."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import ganrun.data.decoded as decoded
import ganrun.data.imagefile as imagefile
from ganrun.data.streamed import IMAGE_SUFFIXES, StreamedImages, as_is, check_channels, subfolder_classes
from ganrun.errors import DataError  # noqa: F401  (re-exported)


def folder_root(root: str) -> Path:
    """The folder `root` names, or a DataError that says what it is instead."""
    if not root:
        raise DataError("dataset=folder needs dataset.root=DIR, a folder of images")
    base = Path(os.path.expanduser(root))
    if base.is_file() and zipfile.is_zipfile(base):
        raise DataError(f"dataset.root={root} is a ZIP archive: use dataset=zip dataset.path={root}")
    if base.is_file():
        raise DataError(f"dataset.root={root} is a file; give the folder that holds the images")
    if not base.is_dir():
        raise DataError(f"dataset.root={root}: no such folder")
    return base


class ImageFolder(StreamedImages):
    """Every image under `root` (recursively), decoded as imagefile.decode says to image_size.

    channels: 1 (grey), 3 (RGB) or 0 (RGB when any image is in colour, else grey); background: the colour transparent
    pixels are composited onto. Files PIL cannot decode are skipped with a warning that names them. When
    every image sits in a first-level sub-folder (two or more), the sub-folders are classes (labelled=False:
    ignored, an unlabelled set).
    """

    def __init__(self, root: str = "", image_size: int = 64, channels: int = 0,
                 background: imagefile.Background = "white", workers: Any = "auto", labelled: bool = True):
        base = folder_root(root)
        check_channels(channels)
        imagefile.parse_background(background)  # refuse a bad colour before reading any file
        candidates = sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        found = self._scan(f"folder:{base.name}", decoded.file_fingerprint([p.resolve() for p in candidates]),
                           lambda: imagefile.scan(((p, p) for p in candidates), channels),
                           lambda p: str(p.relative_to(base)), lambda rel: base / rel,
                           image_size=image_size, channels=channels, background=background)
        classes, labels = subfolder_classes([p.relative_to(base).parts for p in found.items]) if labelled else ([], None)
        self._serve(f"folder:{base.name}", found, as_is, labels, classes, image_size, background, workers,
                    f"dataset.root={root}")


