"""`dataset=hf`: the images of a Hugging Face `datasets` dataset (a save_to_disk folder, parquet files or a
Hub name), decoded as files are; labels from a column."""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Any, Optional

import ganrun.data.imagefile as imagefile
from ganrun.data.base import first_line
from ganrun.data.streamed import StreamedImages, check_channels
from ganrun.errors import DataError  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # name or user/name, not a path like ~/x


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError("dataset=hf needs the datasets package: pip install 'ganrun[hf]'") from None
    return datasets


def _load_hf(path: str, split: str) -> Any:
    """One split of a Hugging Face dataset: a folder written by save_to_disk (a DatasetDict's `split`), a
    parquet file or a folder of them (splits from the file names, as the Hub names them), else a Hub name."""
    datasets = _import_datasets()
    where, local = f"dataset.path={path}", Path(os.path.expanduser(path))
    if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
        loaded = datasets.load_from_disk(str(local))
    elif (local.is_file() and local.suffix == ".parquet") or (local.is_dir() and any(local.rglob("*.parquet"))):
        files = {"data_files": str(local)} if local.is_file() else {"data_dir": str(local)}
        try:
            loaded = datasets.load_dataset("parquet", **files)
        except Exception as e:  # pyarrow and datasets raise many kinds; the first line says which
            raise DataError(f"{where}: cannot read it as parquet ({first_line(e)})") from None
    elif local.exists():
        raise DataError(f"{where} is neither a folder written by save_to_disk nor parquet file(s); "
                        f"for plain image files use dataset=folder")
    elif HUB_NAME.fullmatch(path) and local.suffix != ".parquet":
        try:  # a Hub name such as user/name: needs internet (never used by the tests)
            loaded = datasets.load_dataset(path, split=split)
        except Exception as e:
            raise DataError(f"{where}: no such local file or folder, and the Hugging Face Hub did not give it "
                            f"({first_line(e)}); check the path") from None
    else:
        raise DataError(f"{where}: no such file or folder; give a folder written by save_to_disk, a parquet file "
                        f"or a folder of them")
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{where} has no split {split!r}; pick one: dataset.split={' / '.join(loaded)}")
        loaded = loaded[split]
    elif split != "train" and local.exists():  # one Dataset saved: it has no splits to pick from
        raise DataError(f"dataset.split={split}: {where} holds one set, not named splits (a Dataset saved, not a "
                        f"DatasetDict); leave dataset.split out")
    return loaded


def _hf_source(value: Any) -> imagefile.Source:
    """An HF image cell, undecoded ({"bytes": ..., "path": ...}, or raw bytes), as something PIL opens;
    an empty cell becomes an empty file, which `scan` counts as unreadable."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return io.BytesIO(value)
    return value if isinstance(value, str) and value else io.BytesIO(b"")


class _HFRows:
    """Reads row i's image cell (Arrow, memory-mapped: cheap to fork or pickle to a DataLoader worker)."""

    def __init__(self, table: Any, column: str):
        self.table, self.column = table, column

    def __call__(self, i: int) -> imagefile.Source:
        return _hf_source(self.table[i][self.column])


def _hf_images(ds: Any, column: str, where: str) -> Any:
    """The image column alone, undecoded (imagefile.decode does the decoding, as for files)."""
    datasets = _import_datasets()
    feature = ds.features[column]
    if isinstance(feature, datasets.Image):
        return ds.select_columns([column]).cast_column(column, datasets.Image(decode=False))
    raw = isinstance(feature, datasets.Value) and feature.dtype in ("binary", "large_binary")  # bytes per cell
    if raw or (isinstance(feature, dict) and "bytes" in feature):  # or parquet's {bytes, path} without HF metadata
        return ds.select_columns([column])
    raise DataError(f"dataset.image_column={column}: the column holds {feature}, not images ({where}); "
                    f"its columns: {', '.join(ds.column_names)}")


def _hf_labels(ds: Any, column: str, rows: list[int]) -> tuple[list[int], list[str], int]:
    """(the label of each row kept, the class names, the class count) from a ClassLabel, integer or
    string column (strings become classes in sorted order)."""
    datasets = _import_datasets()
    feature, values = ds.features[column], list(ds[column])
    kept = [values[i] for i in rows]
    if kept and all(isinstance(v, str) for v in kept):
        names = sorted(set(kept))
        return [names.index(v) for v in kept], names, len(names)
    bad = next((v for v in kept if type(v) is not int or v < 0), None)
    if bad is not None:
        raise DataError(f"dataset.label_column={column} holds {bad!r}, not a class number >= 0; pick a column "
                        f"of classes, or dataset.label_column=null to train without labels")
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else []
    return kept, names, len(names)


def _label_column(ds: Any, column: Optional[str], where: str) -> Optional[str]:
    """dataset.label_column as the set is read: auto takes `label` when the set has that column, else its one
    ClassLabel column, else none (an unlabelled set), and says which; a name given must be a column."""
    if column != "auto":
        if column is not None and column not in ds.column_names:
            raise DataError(f"dataset.label_column={column}: no such column in {where}; its columns: "
                            f"{', '.join(ds.column_names)}; dataset.label_column=null trains without labels")
        return column
    datasets = _import_datasets()
    named = [k for k, f in ds.features.items() if isinstance(f, datasets.ClassLabel)]
    found = "label" if "label" in ds.column_names else named[0] if len(named) == 1 else None
    if found is None:
        log.info("dataset.label_column=auto: %s has no `label` column and no single ClassLabel column (its columns: "
                 "%s), so it is read without labels; dataset.label_column=NAME takes one", where,
                 ", ".join(ds.column_names))
    else:
        log.info("dataset.label_column=auto: the classes come from the column `%s` (dataset.label_column=null "
                 "reads the set without labels)", found)
    return found


class HFImages(StreamedImages):
    """The images of a Hugging Face `datasets` dataset on disk (see _load_hf), decoded as the folder's images
    are; labels from `label_column` (a ClassLabel, integers or strings; null: unlabelled; auto: _label_column's)."""

    def __init__(self, path: str = "", split: str = "train", image_column: str = "image",
                 label_column: Optional[str] = "auto", image_size: int = 64, channels: int = 0,
                 background: imagefile.Background = "white", workers: Any = "auto"):
        if not path:
            raise DataError("dataset=hf needs dataset.path=..., a folder written by save_to_disk, a parquet file "
                            "or folder of them, or a Hub name")
        check_channels(channels)
        imagefile.parse_background(background)
        where = f"dataset.path={path}"
        ds = _load_hf(path, split)
        if image_column not in ds.column_names:
            raise DataError(f"dataset.image_column={image_column}: no such column in {where}; its columns: "
                            f"{', '.join(ds.column_names)}")
        label_column = _label_column(ds, label_column, where)
        images = _hf_images(ds, image_column, where)
        cells = (cell for batch in images.iter(batch_size=1000) for cell in batch[image_column])
        found = imagefile.scan(((i, _hf_source(cell)) for i, cell in enumerate(cells)), channels)
        labels, classes, n_classes = _hf_labels(ds, label_column, found.items) if label_column else (None, [], 0)
        name = f"hf:{Path(path.rstrip('/')).stem or path}" + (f"[{split}]" if split != "train" else "")
        self._serve(name, found, _HFRows(images, image_column), labels, classes, image_size, background, workers,
                    where, n_classes)


# ---------------------------------------------------------------- toy mixtures (1-D and 2-D)

