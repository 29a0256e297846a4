"""Images as people keep them: mixed formats and transparency in a folder."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, TINY_MODEL, compose_train, run_cli
from ganrun import config, data, imagefile
from ganrun.build import build

CPU = torch.device("cpu")
RED, GREEN = (255, 0, 0), (0, 255, 0)


def pixels(ds, n=None) -> np.ndarray:
    """The first batch of an image set (shuffled), as uint8 (N, H, W, C)."""
    batch = next(ds.batches(n or len(ds), CPU))
    return ((batch + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def decoded(path, channels=0, **kwargs) -> np.ndarray:
    """The one image at `path` (alone in its folder) as the folder set serves it: uint8 (H, W, C)."""
    return pixels(data.ImageFolder(str(path.parent), image_size=8, channels=channels, workers=0, **kwargs))[0]


def half_transparent_rgba(path):
    """Left half fully transparent with black stored under it (what PIL's convert would show), right half red."""
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[:, 4:] = (*RED, 255)
    Image.fromarray(arr, "RGBA").save(path)


def palette() -> Image.Image:
    """An 8x8 palette image: index 0 (black) on the left half, 1 (red) on the right."""
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, *RED, *GREEN] + [0] * 759)
    im.paste(0, (0, 0, 4, 8))
    return im


def png_bytes(level: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (8, 8), level).save(out, "PNG")
    return out.getvalue()


def levels_of(images: np.ndarray) -> list[int]:
    """Which of the grey levels 0, 40, 80, ... each image holds (their index)."""
    return [int(round(x.mean() / 40)) for x in images]


def run_train(run_dir, *overrides):
    """`ganrun train OVERRIDES` on 8x8 images with a tiny MLP pair; checks it completed and wrote last.pt."""
    r = run_cli("train", *overrides, "dataset.image_size=8", "dataset.workers=0", "model=mlp", *TINY,
                *TINY_MODEL["mlp"], f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    return r, summary


# ---------------------------------------------------------------- decoding: transparency and formats

@pytest.mark.parametrize("background, expected", [("white", (255, 255, 255)), ("#00ff00", GREEN),
                                                  ("blue", (0, 0, 255)), (128, (128, 128, 128)),
                                                  ([10, 20, 30], (10, 20, 30))])
def test_transparent_pixels_become_the_background(tmp_path, background, expected):
    half_transparent_rgba(tmp_path / "a.png")
    img = decoded(tmp_path / "a.png", background=background)
    assert img.shape == (8, 8, 3)
    assert (img[:, :4] == expected).all() and (img[:, 4:] == RED).all()


def test_background_default_is_white_and_composites_partial_alpha(tmp_path):
    Image.new("RGBA", (8, 8), (0, 0, 0, 128)).save(tmp_path / "a.png")  # half-opaque black over white
    img = decoded(tmp_path / "a.png")
    assert np.abs(img.astype(int) - 127).max() <= 1


def test_background_values_are_checked():
    assert imagefile.parse_background("gray") == (128, 128, 128)
    for bad in ("notacolour", [300, 0, 0], [1, 2], True):
        with pytest.raises(data.DataError, match=r"dataset.background=.*#rrggbb.*\[r,g,b\]"):
            imagefile.parse_background(bad)


def save_p_transparent(path):
    palette().save(path, transparency=0)


def save_la(path):
    arr = np.zeros((8, 8, 2), np.uint8)
    arr[:, 4:] = (50, 255)
    Image.fromarray(arr, "LA").save(path)


def save_grey(path):
    Image.new("L", (8, 8), 77).save(path)


def save_grey16(path):
    Image.fromarray(np.full((8, 8), 32896, np.uint16)).save(path)  # 32896 / 257 = 128


def save_jpeg(path):
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path, quality=95)


def save_gif(path):
    second = Image.new("P", (8, 8), 2)  # all green: must not be what loads
    second.putpalette(palette().getpalette())
    palette().save(path, save_all=True, append_images=[second], transparency=0)


WHITE_RED = ((255, 255, 255), RED)  # left half (transparent) and right half of the halved images
FORMATS = [
    ("p.png", save_p_transparent, 3, WHITE_RED),
    ("la.png", save_la, 1, ((255,), (50,))),
    ("grey.png", save_grey, 1, ((77,), (77,))),
    ("grey16.png", save_grey16, 1, ((128,), (128,))),
    ("rgb.jpg", save_jpeg, 3, ((200, 30, 30), (200, 30, 30))),
    ("anim.gif", save_gif, 3, WHITE_RED),
]


@pytest.mark.parametrize("name, save, channels, halves", FORMATS, ids=[f[0] for f in FORMATS])
def test_each_format_loads_with_its_channels_and_pixels(tmp_path, name, save, channels, halves):
    save(tmp_path / name)
    img = decoded(tmp_path / name).astype(int)
    assert img.shape == (8, 8, channels)
    tol = 3 if name.endswith(".jpg") else 0  # JPEG is lossy
    assert np.abs(img[:, :4] - halves[0]).max() <= tol and np.abs(img[:, 4:] - halves[1]).max() <= tol


def test_channels_can_be_forced_either_way(tmp_path):
    save_grey(tmp_path / "g.png")
    assert (decoded(tmp_path / "g.png", channels=3) == 77).all()
    half_transparent_rgba(tmp_path / "g.png")
    grey = decoded(tmp_path / "g.png", channels=1)
    assert grey.shape == (8, 8, 1) and (grey[:, :4] == 255).all() and (grey[:, 4:] == 76).all()  # red's luma


def test_start_of_run_line_counts_each_kind(tmp_path, caplog):
    folder = tmp_path / "faces"
    folder.mkdir()
    half_transparent_rgba(folder / "a.png")
    half_transparent_rgba(folder / "b.png")
    save_jpeg(folder / "c.jpg")
    save_gif(folder / "d.gif")
    (folder / "broken.png").write_bytes(b"not an image")
    with caplog.at_level(logging.INFO, logger="ganrun.data"):
        ds = data.ImageFolder(str(folder), image_size=8, workers=0)
    assert len(ds) == 4 and ds.shape == (3, 8, 8)
    lines = [r.getMessage() for r in caplog.records]
    assert "folder faces: 4 images: 2 PNG RGBA, 1 GIF P+transparency, 1 JPEG RGB " \
           "(transparent pixels composited on white)" in lines
    assert any("skipped 1 file(s)" in line for line in lines)


def test_no_compositing_note_without_transparency(tmp_path, caplog):
    save_grey(tmp_path / "a.png")
    with caplog.at_level(logging.INFO, logger="ganrun.data"):
        data.ImageFolder(str(tmp_path), image_size=8, workers=0)
    assert f"folder {tmp_path.name}: 1 images: 1 PNG L" in [r.getMessage() for r in caplog.records]


def test_folder_background_composes_and_is_checked(tmp_path):
    half_transparent_rgba(tmp_path / "a.png")
    cfg = compose_train("dataset=folder", f"dataset.root={tmp_path}", "dataset.image_size=8", "dataset.workers=0",
                        "dataset.background=[0,0,255]", "model=mlp")
    assert (pixels(build(cfg).data)[0, :, :4] == (0, 0, 255)).all()
    with pytest.raises(config.ConfigError, match="dataset.background=True: expected str or int or a list"):
        build(compose_train("dataset=folder", f"dataset.root={tmp_path}", "dataset.background=true"))
