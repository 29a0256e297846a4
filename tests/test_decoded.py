"""A user's set that fits in memory is decoded once, served from memory with exactly the batches streaming
would give, and cached on disk so the next run neither scans nor decodes; a changed file or a damaged cache
means decoding again."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ganrun import data
from ganrun.data import decoded, imagefile


def colour_folder(root, n=24, size=12, classes=("a", "b")):
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / classes[i % len(classes)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return root


def no_scan(*args, **kwargs):
    raise AssertionError("scanned although the decoded cache holds these files")


@pytest.mark.parametrize("labels", [False, True])
def test_memory_serves_the_batches_streaming_would(tmp_path, monkeypatch, labels):
    root = colour_folder(tmp_path / "set")
    held = data.ImageFolder(str(root), image_size=8, workers=0)
    assert held._memory is not None
    monkeypatch.setattr(decoded, "MEMORY_MAX", 0)
    monkeypatch.setattr(decoded, "load", lambda *a: None)
    streamed = data.ImageFolder(str(root), image_size=8, workers=0)
    assert streamed._memory is None
    for a, b in zip(held.batches(5, torch.device("cpu"), seed=3, start=2, labels=labels),
                    streamed.batches(5, torch.device("cpu"), seed=3, start=2, labels=labels)):
        for x, y in zip(a if labels else [a], b if labels else [b]):
            assert torch.equal(x, y)
        break
    assert torch.equal(held.draw(7, 1)[0], streamed.draw(7, 1)[0])
    assert torch.equal(held.make_split("test").images, streamed.make_split("test").images)


def test_the_next_run_starts_from_the_cache_without_scanning(tmp_path, monkeypatch, caplog):
    root = colour_folder(tmp_path / "set")
    (root / "a" / "broken.png").write_bytes(b"\x89PNG cut short")
    first = data.ImageFolder(str(root), image_size=8, workers=0)
    monkeypatch.setattr(imagefile, "scan", no_scan)
    with caplog.at_level("INFO"):
        again = data.ImageFolder(str(root), image_size=8, workers=0)
    assert "read from the cache" in caplog.text
    assert "broken.png" in caplog.text  # a skipped file is still named
    assert torch.equal(again.all_samples(), first.all_samples())
    assert torch.equal(again.labels, first.labels) and again.classes == ["a", "b"]
    # a cached set given by another spelling of the same folder
    monkeypatch.chdir(tmp_path)
    assert len(data.ImageFolder("set", image_size=8, workers=0)) == len(first)
    # another size is another entry
    monkeypatch.undo()
    assert data.ImageFolder(str(root), image_size=4, workers=0).shape == (3, 4, 4)


def test_a_changed_file_or_a_damaged_cache_means_decoding_again(tmp_path, monkeypatch, caplog):
    root = colour_folder(tmp_path / "set")
    data.ImageFolder(str(root), image_size=8, workers=0)
    Image.new("RGB", (12, 12), (255, 0, 0)).save(root / "a" / "00.png")  # edited: size and time change
    scans = []
    real_scan = imagefile.scan
    monkeypatch.setattr(imagefile, "scan", lambda *a, **k: scans.append(1) or real_scan(*a, **k))
    edited = data.ImageFolder(str(root), image_size=8, workers=0)
    assert scans and edited.all_samples()[0, 0].float().mean() == 255  # the new red image, not the old one
    for file in (decoded.cache_root() / "decoded").glob("folder-set-*.pt"):
        file.write_bytes(file.read_bytes()[:200])
    with caplog.at_level("WARNING"):
        again = data.ImageFolder(str(root), image_size=8, workers=0)
    assert "unreadable" in caplog.text and len(scans) == 2
    assert torch.equal(again.all_samples(), edited.all_samples())


def test_a_zip_is_cached_too(tmp_path, monkeypatch):
    root = colour_folder(tmp_path / "set")
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(root.rglob("*.png")):
            zf.write(f, f.relative_to(root).as_posix())
    first = data.ImageZip(str(archive), image_size=8, workers=0)
    assert first._memory is not None and first.n_classes == 2
    monkeypatch.setattr(imagefile, "scan", no_scan)
    again = data.ImageZip(str(archive), image_size=8, workers=0, labelled=False)
    assert torch.equal(again.all_samples(), first.all_samples()) and again.labels is None


def test_clusters_relabel_the_set_held_in_memory(tmp_path):
    images = data.ImageFolder(str(colour_folder(tmp_path / "set")), image_size=8, workers=0)
    relabelled = images.with_labels(torch.arange(len(images)) % 3)
    _, y = next(relabelled.batches(6, torch.device("cpu"), labels=True))
    assert int(y.max()) == 2 and images.labels.max() == 1  # the original keeps its labels
