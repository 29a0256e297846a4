"""Datasets: IDX reading, the [-1, 1] range, batching, toy mixtures, image folders."""

import gzip
import itertools
import struct

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, compose_train, needs_shared_mnist

from ganrun import data
from ganrun.config import ConfigError
from ganrun.training.build import build


def write_idx(path, array, compress=False):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.gz" if compress else "x")
    write_idx(path, arr, compress)
    np.testing.assert_array_equal(data.read_idx(path), arr)


def test_read_idx_refuses_truncated_files(tmp_path):
    path = tmp_path / "x"
    write_idx(path, np.zeros((4, 5), np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(data.DataError, match="truncated"):
        data.read_idx(path)


def test_mnist_layouts_and_scaling(tmp_path):
    # torchvision's root/MNIST/raw layout, uncompressed, with pixels 0 and 255
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.zeros((6, 28, 28), np.uint8)
    imgs[:, :14] = 255
    write_idx(raw / "t10k-images-idx3-ubyte", imgs)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(6, dtype=np.uint8))
    ds = data.mnist(str(tmp_path), download=False, split="test")
    assert len(ds) == 6 and ds.labels.tolist() == list(range(6))
    batch = next(ds.batches(4, torch.device("cpu")))
    assert batch.shape == (4, 1, 28, 28) and batch.dtype == torch.float32
    assert batch.min() == -1 and batch.max() == 1


def test_mnist_missing_files_say_how_to_fix(tmp_path):
    with pytest.raises(data.DataError, match="dataset.root.*dataset.download=true"):
        data.mnist(str(tmp_path), download=False)


@needs_shared_mnist
def test_shared_mnist_and_resize():
    ds = data.mnist(str(SHARED_DATA / "mnist"), download=False, split="test", image_size=32)
    assert ds.images.shape == (10_000, 1, 32, 32) and ds.images.dtype == torch.uint8
    assert sorted(ds.labels.unique().tolist()) == list(range(10))


def test_mnist_sample_is_balanced_real_mnist():
    ds = data.mnist_sample()
    assert ds.images.shape == (5000, 1, 28, 28)
    assert torch.bincount(ds.labels).tolist() == [500] * 10
    assert ds.images.max() == 255 and ds.images.float().mean() == pytest.approx(33, abs=3)  # MNIST's mean pixel


def test_batches_cover_an_epoch_without_repeats():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    ds = data.TensorImages(images, None, "t")
    it = ds.batches(3, torch.device("cpu"), seed=1)
    seen = torch.cat([next(it)[:, 0, 0, 0] for _ in range(3)])  # 3 full batches per epoch of 10
    values = ((seen + 1) * 127.5).round().long()
    assert len(set(values.tolist())) == 9
    again = ds.batches(3, torch.device("cpu"), seed=1)
    assert torch.equal(next(again), next(ds.batches(3, torch.device("cpu"), seed=1)))  # seeded order


def test_batch_larger_than_dataset():
    ds = data.TensorImages(torch.zeros(5, 1, 2, 2, dtype=torch.uint8), None, "tiny")
    with pytest.raises(data.DataError, match="train.batch_size=8 is larger"):
        next(ds.batches(8, torch.device("cpu")))


def test_ring_and_grid_samples_sit_on_their_modes():
    ring = data.ring()
    assert ring.centers.shape == (8, 2)
    torch.testing.assert_close(ring.centers.norm(dim=1), torch.ones(8))
    x = next(ring.batches(4000, torch.device("cpu")))
    d = torch.cdist(x, ring.centers).min(dim=1).values
    assert d.max() < 0.06 and d.std() == pytest.approx(0.01 * 0.655, rel=0.1)  # Rayleigh: sigma*sqrt(2-pi/2)
    grid = data.grid()
    assert grid.centers.shape == (25, 2)
    x = grid.sample(5000, torch.Generator().manual_seed(0))
    nearest = torch.cdist(x, grid.centers).argmin(dim=1)
    assert torch.bincount(nearest, minlength=25).min() > 120  # every mode drawn, about equally


def test_image_folder(tmp_path):
    from PIL import Image

    (tmp_path / "sub").mkdir()
    Image.new("L", (50, 70), 255).save(tmp_path / "a.png")
    Image.new("L", (64, 64), 0).save(tmp_path / "sub" / "b.jpg")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    ds = data.ImageFolder(str(tmp_path), image_size=28, channels=0, workers=0)
    assert len(ds) == 2 and ds.shape == (1, 28, 28)
    batch = next(ds.batches(2, torch.device("cpu")))
    assert batch.shape == (2, 1, 28, 28)
    assert sorted(batch.view(2, -1).mean(1).tolist()) == [-1.0, 1.0]


def test_image_folder_streams_epochs_with_workers_and_resumes(tmp_path):
    from PIL import Image

    for v in range(6):  # six images told apart by their grey level
        Image.new("L", (8, 8), v * 40).save(tmp_path / f"{v}.png")
    ds = data.ImageFolder(str(tmp_path), image_size=8, channels=1, workers=2)
    it = ds.batches(2, torch.device("cpu"), seed=3)
    levels = [sorted(round((x.mean().item() + 1) * 127.5 / 40) for x in next(it)) for _ in range(9)]
    for epoch in range(3):  # one DataLoader, three epochs: each a permutation of the six
        assert sorted(v for b in levels[epoch * 3:epoch * 3 + 3] for v in b) == list(range(6))
    later = ds.batches(2, torch.device("cpu"), seed=3, start=4)
    assert sorted(round((x.mean().item() + 1) * 127.5 / 40) for x in next(later)) == levels[4]


def test_image_folder_errors(tmp_path):
    with pytest.raises(data.DataError, match="no readable images"):
        data.ImageFolder(str(tmp_path))
    with pytest.raises(data.DataError, match="no such folder"):
        data.ImageFolder(str(tmp_path / "missing"))


def test_image_folder_subfolders_are_classes(tmp_path):
    from PIL import Image

    for cls, level in (("cats", 0), ("dogs", 255)):
        (tmp_path / cls).mkdir()
        for i in range(4):
            Image.new("L", (8, 8), level).save(tmp_path / cls / f"{i}.png")
    ds = data.ImageFolder(str(tmp_path), image_size=8, channels=1, workers=0)
    assert ds.classes == ["cats", "dogs"] and ds.n_classes == 2
    x, y = next(ds.batches(8, torch.device("cpu"), labels=True))
    assert torch.equal((x.flatten(1).mean(1) > 0).long(), y)  # white images are the dogs
    (tmp_path / "stray.png").write_bytes((tmp_path / "cats" / "0.png").read_bytes())
    assert data.ImageFolder(str(tmp_path), image_size=8, channels=1).n_classes == 0  # not all in sub-folders


def test_conditional_training_on_a_class_folder(tmp_path):
    from conftest import TINY, TINY_MODEL, compose_train
    from PIL import Image

    from ganrun.training.run import run

    for cls, level in (("a", 0), ("b", 255)):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(8):
            Image.new("RGB", (32, 32), (level, i * 20, 0)).save(tmp_path / "data" / cls / f"{i}.png")
    cfg = compose_train("dataset=folder", f"dataset.root={tmp_path / 'data'}", "dataset.image_size=28",
                        "dataset.workers=0", "model.conditional=true", *TINY, *TINY_MODEL["dcgan"])
    assert run(cfg, tmp_path / "run")["status"] == "completed"


def test_resident_and_host_batches_are_the_same():
    """dataset.on_device only changes where a batch is gathered, never which images it holds."""
    images, labels = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8), torch.arange(50) % 10
    cpu = torch.device("cpu")
    on = data.TensorImages(images, labels, "t", on_device=True)
    off = data.TensorImages(images, labels, "t", on_device=False)
    assert on.resident(cpu) and not off.resident(cpu)
    for kwargs in ({"seed": 3}, {"seed": 3, "start": 5, "labels": True}):  # 13 batches: over two epochs
        for a, b in zip(itertools.islice(on.batches(8, cpu, **kwargs), 13), itertools.islice(off.batches(8, cpu, **kwargs), 13)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_on_device_auto_asks_the_gpu_for_room(monkeypatch):
    """auto: always resident on the CPU; on CUDA only when the set needs under a quarter of free memory."""
    small = data.TensorImages(torch.zeros(100, 1, 10, 10, dtype=torch.uint8), None, "t")  # 10,000 bytes
    assert small.on_device == "auto" and small.resident(torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (50_000, 80_000))
    assert small.resident(torch.device("cuda"))  # 10,000 < 0.25 * 50,000
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (30_000, 80_000))
    assert not small.resident(torch.device("cuda"))
    with pytest.raises(data.DataError, match="dataset.on_device='gpu'"):
        data.TensorImages(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), None, "t", on_device="gpu")


def test_on_device_composes_and_is_checked():
    cfg = compose_train("dataset=mnist-sample", "dataset.on_device=false")
    assert build(cfg).data.on_device is False
    with pytest.raises(ConfigError, match="dataset.on_device='maybe'"):
        build(compose_train("dataset=mnist-sample", "dataset.on_device=maybe"))
