"""`dataset=zip`: the images of a ZIP archive, read member by member without unpacking; classes from a
StyleGAN-style dataset.json or from sub-folders."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import ganrun.data.decoded as decoded
import ganrun.data.imagefile as imagefile
from ganrun.data.streamed import IMAGE_SUFFIXES, StreamedImages, check_channels, subfolder_classes
from ganrun.errors import DataError  # noqa: F401  (re-exported)


class _ZipReader:
    """Reads members of one ZIP file. Each process opens its own handle on first use: a handle is never
    pickled to a DataLoader worker, and a forked worker does not reuse its parent's (processes sharing
    one file offset would read each other's bytes)."""

    def __init__(self, path: str):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_zip": None, "_pid": -1}

    def __call__(self, name: str) -> io.BytesIO:
        if self._zip is None or self._pid != os.getpid():
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return io.BytesIO(self._zip.read(name))


def zip_file(path: str) -> Path:
    """The archive `path` names, or a DataError that says what it is instead."""
    if not path:
        raise DataError("dataset=zip needs dataset.path=FILE.zip, a ZIP archive of images")
    file = Path(os.path.expanduser(path))
    if file.is_dir():
        raise DataError(f"dataset.path={path} is a folder: use dataset=folder dataset.root={path}, or give a .zip file")
    if not file.is_file():
        raise DataError(f"dataset.path={path}: no such file; give the path of a .zip archive of images")
    if not zipfile.is_zipfile(file):
        raise DataError(f"dataset.path={path} is not a ZIP archive; give a .zip of images "
                        f"(or unpack it and use dataset=folder)")
    return file


def _zip_images(zf: zipfile.ZipFile) -> list[str]:
    """The image members, sorted; macOS's __MACOSX/ and ._* resource forks left out."""
    def junk(name: str) -> bool:
        return name.startswith("__MACOSX/") or name.rsplit("/", 1)[-1].startswith("._")

    return sorted(i.filename for i in zf.infolist()
                  if not i.is_dir() and Path(i.filename).suffix.lower() in IMAGE_SUFFIXES and not junk(i.filename))


def _zip_labels(zf: zipfile.ZipFile, names: list[str], where: str) -> tuple[dict[str, int] | None, list[str]]:
    """The class of each image from dataset.json at the zip's root (StyleGAN's convention,
    {"labels": [["dir/img.png", 3], ...]}; None when there is no such file or it says "labels": null) and the
    classes' names where it also has {"classes": ["name of class 0", ...]} (else [])."""
    if "dataset.json" not in zf.namelist():
        return None, []
    fix = ('dataset.json must read {"labels": [["path/in/zip.png", 0], ...]} (classes: integers >= 0) '
           'or {"labels": null}')
    try:
        meta = json.loads(zf.read("dataset.json"))
    except ValueError:  # invalid JSON or not UTF-8
        raise DataError(f"{where}: dataset.json is not valid JSON; {fix}") from None
    pairs = meta.get("labels") if isinstance(meta, dict) else "not an object"
    if pairs is None:
        return None, []
    if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and type(p[1]) is int and p[1] >= 0
            for p in pairs):
        raise DataError(f"{where}: {fix}")
    table = {name.replace("\\", "/"): label for name, label in pairs}
    known = set(names)
    stray = [n for n in table if n not in known]
    if stray:
        more = f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""
        raise DataError(f"{where}: dataset.json labels {stray[0]!r}{more}, which is not an image in the zip; "
                        f"fix the name in dataset.json (paths inside the zip, with /) or add the image")
    unlabelled = [n for n in names if n not in table]
    if unlabelled:
        raise DataError(f"{where}: {len(unlabelled)} image(s) have no label in dataset.json (e.g. {unlabelled[0]!r}); "
                        f"label every image, or write \"labels\": null to train without labels")
    return table, _class_names(meta.get("classes"), max(table.values(), default=-1) + 1, where)


def _class_names(names: Any, n_classes: int, where: str) -> list[str]:
    """dataset.json's "classes": a distinct name for each class number from 0 (names past the labels' highest
    class are not classes of this set); [] where it has none."""
    if names is None:
        return []
    if not (isinstance(names, list) and all(isinstance(n, str) and n for n in names)
            and len(set(names)) == len(names) >= n_classes):
        raise DataError(f"{where}: dataset.json's \"classes\" must list a distinct name for each class number, "
                        f"from 0 to at least {n_classes - 1} (\"classes\": [\"cats\", \"dogs\", ...]), or be left out")
    return names[:n_classes]


def _below_common_folder(paths: list[list[str]]) -> list[list[str]]:
    """Paths below the folder that holds all of them (a zipped folder's own name is not a class)."""
    while paths and all(len(p) > 1 for p in paths) and len({p[0] for p in paths}) == 1:
        paths = [p[1:] for p in paths]
    return paths


class ImageZip(StreamedImages):
    """Every image in a ZIP archive, read member by member without unpacking (each DataLoader worker opens
    the archive itself) and decoded as the folder's images are.

    Classes: dataset.json at the zip's root, as StyleGAN writes it ({"labels": [["dir/img.png", 3], ...]},
    or "labels": null); without one, the first-level sub-folders as for dataset=folder, counted below the
    one folder that holds everything when the zip was made from a folder. labelled=False ignores them.
    """

    def __init__(self, path: str = "", image_size: int = 64, channels: int = 0,
                 background: imagefile.Background = "white", workers: Any = "auto", labelled: bool = True):
        where = f"dataset.path={path}"
        file = zip_file(path)
        check_channels(channels)
        imagefile.parse_background(background)
        try:
            with zipfile.ZipFile(file) as zf:
                names = _zip_images(zf)
                table, named = _zip_labels(zf, names, where)
                found = self._scan(f"zip:{file.stem}", decoded.file_fingerprint([file.resolve()]),
                                   lambda: imagefile.scan(((n, zf.open(n)) for n in names), channels),
                                   image_size=image_size, channels=channels, background=background)
        except zipfile.BadZipFile as e:
            raise DataError(f"{where} is a damaged ZIP archive ({e}); zip the images again") from None
        if table is not None:
            classes, labels = named, [table[n] for n in found.items]
        else:
            classes, labels = subfolder_classes(_below_common_folder([n.split("/") for n in found.items]))
        if not labelled:
            classes, labels = [], None
        self._serve(f"zip:{file.stem}", found, _ZipReader(str(file)), labels, classes, image_size, background,
                    workers, where)


