"""Datasets: the protocol every set follows (base.Dataset) and one module per format: in-memory tensors
(tensors), MNIST-style IDX files and the offline MNIST sample (digits), CIFAR-10 (cifar), images as people
keep them (imagefile decodes one; streamed serves them; folder, archive (ZIP), hf), the 1-D / 2-D
mixtures (toy), and self-conditioning on clusters (clusters). Config nodes name the constructors below."""

from typing import Any

from ganrun.data.archive import ImageZip, zip_file
from ganrun.data.base import Dataset, to_unit_range
from ganrun.data.cifar import cifar10
from ganrun.data.digits import fashion_mnist, mnist, mnist_sample, read_idx, stacked_mnist
from ganrun.data.folder import ImageFolder, folder_root
from ganrun.data.hf import HFImages
from ganrun.data.streamed import IMAGE_SUFFIXES, StreamedImages
from ganrun.data.tensors import TensorImages
from ganrun.data.toy import Mixture, gauss1d, grid, ring
from ganrun.errors import DataError

__all__ = ["ImageZip", "Dataset", "to_unit_range", "cifar10", "fashion_mnist", "mnist", "mnist_sample", "read_idx",
           "stacked_mnist", "ImageFolder", "HFImages", "IMAGE_SUFFIXES", "StreamedImages", "TensorImages", "Mixture",
           "gauss1d", "grid", "ring", "DataError", "check_location"]

LOCATIONS = {"ganrun.data.folder.ImageFolder": ("root", folder_root),  # a dataset's target: its path key, check
             "ganrun.data.archive.ImageZip": ("path", zip_file)}


def check_location(node: Any) -> None:
    """A DataError where a folder or ZIP dataset's node names no such folder or file (or one of the other
    kind): checked before a run folder is made, with the message the dataset itself gives."""
    key, check = LOCATIONS.get(str(node.get("_target_", "")), ("", None))
    if check is not None:
        check(str(node.get(key) or ""))
