"""CIFAR-10 through torchvision (32x32 RGB), downloaded into the data folder when missing."""

from __future__ import annotations

import os

import torch

from ganrun.data.base import OnDevice, Split, default_root, last_line, resize
from ganrun.data.tensors import TensorImages
from ganrun.errors import DataError  # noqa: F401  (re-exported)


def cifar10(root: str = "", download: bool = True, split: Split = "train", image_size: int = 32,
            on_device: OnDevice = "auto") -> TensorImages:
    """CIFAR-10 (32x32 RGB) through torchvision, downloaded into `root` if missing."""
    import torchvision

    base = os.path.expanduser(root or default_root())
    try:
        ds = torchvision.datasets.CIFAR10(base, train=split == "train", download=download)
    except Exception as e:  # torchvision: "Dataset not found or corrupted"; no network: URLError
        raise DataError(f"no CIFAR-10 in {base} ({last_line(e)}); set dataset.root=DIR to the folder holding "
                        f"cifar-10-batches-py, or dataset.download=true on a machine with internet") from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    data = TensorImages(resize(images, image_size), torch.tensor(ds.targets), "cifar10", on_device=on_device)
    data.make_split = lambda s: cifar10(root, download, s, image_size, on_device)  # type: ignore[arg-type]
    return data


# ---------------------------------------------------------------- images as people keep them: folder, ZIP, HF

