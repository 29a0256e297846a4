"""Datasets: the protocol every set follows (base.Dataset) and one module per format: in-memory tensors
(tensors), MNIST-style IDX files and the offline MNIST sample (digits), CIFAR-10 (cifar), images as people
keep them (imagefile decodes one; streamed serves them; folder, archive (ZIP), hf), the 1-D / 2-D
mixtures (toy), and self-conditioning on clusters (clusters). Config nodes name the constructors below."""

from ganrun.data.archive import ImageZip
from ganrun.data.base import Dataset, to_unit_range
from ganrun.data.cifar import cifar10
from ganrun.data.digits import fashion_mnist, mnist, mnist_sample, read_idx, stacked_mnist
from ganrun.data.folder import ImageFolder
from ganrun.data.hf import HFImages
from ganrun.data.streamed import IMAGE_SUFFIXES, StreamedImages
from ganrun.data.tensors import TensorImages
from ganrun.data.toy import Mixture, gauss1d, grid, ring
from ganrun.errors import DataError

__all__ = ["ImageZip", "Dataset", "to_unit_range", "cifar10", "fashion_mnist", "mnist", "mnist_sample", "read_idx",
           "stacked_mnist", "ImageFolder", "HFImages", "IMAGE_SUFFIXES", "StreamedImages", "TensorImages", "Mixture",
           "gauss1d", "grid", "ring", "DataError"]
