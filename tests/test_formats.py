"""Images as people keep them: mixed formats and transparency in a folder, a ZIP, a Hugging Face dataset."""

from __future__ import annotations

import io
import json
import logging
import pickle
import sys
import zipfile

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_MODEL, compose_train, run_cli
from PIL import Image

from ganrun import config, data
from ganrun.data import imagefile
from ganrun.training.build import build

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


# ---------------------------------------------------------------- ZIP archives

def make_zip(path, members: dict[str, bytes], meta=None):
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
        if meta is not None:
            zf.writestr("dataset.json", meta if isinstance(meta, str) else json.dumps(meta))
    return path


def test_zip_labels_from_dataset_json(tmp_path):
    members = {f"00000/img{i}.png": png_bytes(i * 40) for i in range(6)}  # told apart by grey level
    members["readme.txt"] = b"not an image"
    labels = [2, 0, 1, 2, 0, 1]
    meta = {"labels": [[f"00000/img{i}.png", labels[i]] for i in reversed(range(6))]}  # any order
    ds = data.ImageZip(str(make_zip(tmp_path / "set.zip", members, meta)), image_size=8, workers=0)
    assert len(ds) == 6 and ds.shape == (1, 8, 8) and ds.name == "zip:set"
    assert ds.labels.tolist() == labels and ds.n_classes == 3
    x, y = next(ds.batches(6, CPU, labels=True))
    images = ((x + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    assert [labels[level] for level in levels_of(images)] == y.tolist()  # each image with its own label
    assert data.base.class_names(ds) == []  # bare numbers
    named = data.ImageZip(str(make_zip(tmp_path / "named.zip", members, {**meta, "classes": ["ant", "bee", "cat", "dog"]})),
                          image_size=8, workers=0)  # a name past the highest label: not a class of this set
    assert data.base.class_names(named) == ["ant", "bee", "cat"] and named.n_classes == 3
    assert named.describe()["class_names"] == ["ant", "bee", "cat"]  # what the checkpoint keeps for classes=[bee]


def test_zip_null_labels_and_subfolder_classes(tmp_path):
    members = {f"pets/{cls}/{i}.png": png_bytes(level) for cls, level in (("cats", 0), ("dogs", 240)) for i in range(3)}
    members["__MACOSX/pets/cats/._0.png"] = b"resource fork"  # macOS zip junk: left out, not counted
    ds = data.ImageZip(str(make_zip(tmp_path / "a.zip", members)), image_size=8, workers=0)
    assert len(ds) == 6 and ds.classes == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    nolabels = data.ImageZip(str(make_zip(tmp_path / "b.zip", members, {"labels": None})), image_size=8, workers=0)
    assert nolabels.labels.tolist() == [0, 0, 0, 1, 1, 1]  # "labels": null -> the sub-folder rule
    flat = {f"{i}.png": png_bytes(0) for i in range(3)}
    assert data.ImageZip(str(make_zip(tmp_path / "c.zip", flat)), workers=0).labels is None


def test_zip_reads_members_in_worker_processes(tmp_path):
    members = {f"{i}.png": png_bytes(i * 40) for i in range(6)}
    ds = data.ImageZip(str(make_zip(tmp_path / "a.zip", members)), image_size=8, channels=1, workers=2)
    reader = ds._ds.read
    assert reader("3.png").read() == members["3.png"] and reader._zip is not None
    clone = pickle.loads(pickle.dumps(reader))  # what a spawned worker gets: no open handle
    assert clone._zip is None and clone("5.png").read() == members["5.png"]
    it = ds.batches(2, CPU, seed=1)
    epoch = [level for _ in range(3) for level in levels_of(next(it).squeeze(1).add(1).mul(127.5).numpy())]
    assert sorted(epoch) == list(range(6))  # the forked workers read every member, each once


ZIP_ERRORS = [
    ("missing", None, "no such file; give the path of a .zip"),
    ("notes.zip", b"plain text", "is not a ZIP archive; give a .zip of images"),
    ("empty.zip", {"notes.txt": b"x"}, "holds no readable images"),
    ("ghost.zip", ({"a.png": png_bytes(0)}, {"labels": [["a.png", 0], ["ghost.png", 1]]}),
     "dataset.json labels 'ghost.png', which is not an image in the zip; fix the name"),
    ("partial.zip", ({"a.png": png_bytes(0), "b.png": png_bytes(9)}, {"labels": [["a.png", 0]]}),
     "1 image\\(s\\) have no label in dataset.json \\(e.g. 'b.png'\\); label every image"),
    ("badjson.zip", ({"a.png": png_bytes(0)}, "{labels"), "dataset.json is not valid JSON"),
    ("badlabel.zip", ({"a.png": png_bytes(0)}, {"labels": [["a.png", "cat"]]}), "classes: integers >= 0"),
    ("fewnames.zip", ({"a.png": png_bytes(0), "b.png": png_bytes(9)}, {"labels": [["a.png", 0], ["b.png", 1]],
                                                                      "classes": ["cats"]}),
     "dataset.json's \"classes\" must list a distinct name for each class number, from 0 to at least 1"),
    ("twinnames.zip", ({"a.png": png_bytes(0)}, {"labels": [["a.png", 0]], "classes": ["cats", "cats"]}),
     "must list a distinct name"),
]


@pytest.mark.parametrize("name, content, message", ZIP_ERRORS, ids=[e[0] for e in ZIP_ERRORS])
def test_zip_errors_say_how_to_fix(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        make_zip(path, content)
    elif content is not None:
        make_zip(path, *content)
    with pytest.raises(data.DataError, match=message) as e:
        data.ImageZip(str(path), workers=0)
    assert "\n" not in str(e.value) and str(e.value).startswith(f"dataset.path={path}")


def test_zip_given_a_folder_points_to_dataset_folder(tmp_path):
    with pytest.raises(data.DataError, match="is a folder: use dataset=folder dataset.root="):
        data.ImageZip(str(tmp_path), workers=0)


def test_zip_config_composes(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {f"{i}.png": png_bytes(i * 40) for i in range(3)})
    exp = build(compose_train("dataset=zip", f"dataset.path={zip_path}", "dataset.image_size=8", "model=mlp",
                              "dataset.workers=0"))
    assert exp.data.shape == (1, 8, 8) and len(exp.data) == 3 and exp.data._ds.background == (255, 255, 255)
    with pytest.raises(config.ConfigError, match="dataset.path is required"):
        config.validate(compose_train("dataset=zip"))


def test_cli_trains_a_conditional_model_on_a_zip(tmp_path):
    members = {f"{cls}/{i}.png": png_bytes(level) for cls, level in (("a", 0), ("b", 240)) for i in range(8)}
    path = make_zip(tmp_path / "set.zip", {n: members[n] for n in sorted(members)},
                    {"labels": [[n, int(n.startswith("b"))] for n in members]})
    r, summary = run_train(tmp_path / "run", "dataset=zip", f"dataset.path={path}", "model.conditional=true")
    assert "zip set: 16 images: 16 PNG L" in r.stdout + r.stderr
    # 3 held-out images are no reference: said, not scored (tests/test_own_images.py scores larger sets)
    assert summary["metrics"] == {}
    assert summary["metric_settings"]["skipped"].startswith("too few images for metrics: 16 (a held-out reference")


# ---------------------------------------------------------------- Hugging Face datasets

@pytest.fixture
def hf(tmp_path, monkeypatch):
    """`datasets`, with its cache in tmp_path (parquet files are converted there, not in the user's cache)."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))  # for run_cli's subprocess
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return datasets


def hf_set(datasets, n=6):
    """n RGB images told apart by their red level (i * 40) with label i % 3; image 0 is half transparent."""
    images = [Image.new("RGB", (8, 8), (i * 40, 0, 0)) for i in range(n)]
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[:, 4:] = (0, 0, 0, 255)
    images[0] = Image.fromarray(arr, "RGBA")  # left half transparent -> white; its mean red still rounds to 0
    table = {"image": images, "label": [i % 3 for i in range(n)], "kind": ["a"] * n}
    return datasets.Dataset.from_dict(table).cast_column("image", datasets.Image())


def check_hf(ds, n=6):
    assert len(ds) == n and ds.shape == (3, 8, 8) and ds.n_classes == 3
    assert ds.labels.tolist() == [i % 3 for i in range(n)]
    x, y = next(ds.batches(n, CPU, labels=True))
    images = ((x + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    order = [int(round(img[:, 4:, 0].mean() / 40)) for img in images]  # the right half: the stored red
    assert sorted(order) == list(range(n)) and [i % 3 for i in order] == y.tolist()
    first = images[order.index(0)]
    assert (first[:, :4] == 255).all() and (first[:, 4:] == 0).all()  # composited on white, not black


def test_hf_save_to_disk_and_parquet_load_with_labels(hf, tmp_path):
    ds = hf_set(hf)
    ds.save_to_disk(str(tmp_path / "saved"))
    hf.DatasetDict({"train": hf_set(hf, 3), "test": ds}).save_to_disk(str(tmp_path / "dict"))
    ds.to_parquet(str(tmp_path / "one.parquet"))
    (tmp_path / "pq" / "data").mkdir(parents=True)
    ds.to_parquet(str(tmp_path / "pq" / "data" / "train-00000-of-00001.parquet"))
    hf_set(hf, 3).to_parquet(str(tmp_path / "pq" / "data" / "test-00000-of-00001.parquet"))
    for path, split in (("saved", "train"), ("dict", "test"), ("one.parquet", "train"), ("pq", "train")):
        check_hf(data.HFImages(str(tmp_path / path), split=split, image_size=8, workers=0))
    assert len(data.HFImages(str(tmp_path / "pq"), split="test", image_size=8, workers=0)) == 3
    with pytest.raises(data.DataError, match="has no split 'validation'; pick one: dataset.split=train / test"):
        data.HFImages(str(tmp_path / "dict"), split="validation")
    # a split other than train is in the set's name (the runs and feature spaces of the two tell apart) ...
    names = [data.HFImages(str(tmp_path / "dict"), split=s, image_size=8, workers=0).name for s in ("train", "test")]
    assert names == ["hf:dict", "hf:dict[test]"]
    # ... and a split asked of one saved Dataset, which has none, is not ignored
    with pytest.raises(data.DataError, match="dataset.split=test: .* holds one set, not named splits"):
        data.HFImages(str(tmp_path / "saved"), split="test", image_size=8, workers=0)


def test_hf_columns(hf, tmp_path):
    hf_set(hf).save_to_disk(str(tmp_path / "saved"))
    path = str(tmp_path / "saved")
    unlabelled = data.HFImages(path, label_column=None, image_size=8, workers=0)
    assert unlabelled.labels is None and unlabelled.n_classes == 0
    named = data.HFImages(path, label_column="kind", image_size=8, workers=0)  # strings: classes in sorted order
    assert named.classes == ["a"] and named.labels.tolist() == [0] * 6
    with pytest.raises(data.DataError, match="dataset.label_column=species: no such column in .*; its columns: "
                                             "image, label, kind; dataset.label_column=null trains without labels"):
        data.HFImages(path, label_column="species")
    with pytest.raises(data.DataError, match="dataset.image_column=img: no such column .*its columns: image, label"):
        data.HFImages(path, image_column="img")
    with pytest.raises(data.DataError, match="dataset.image_column=label: the column holds"):
        data.HFImages(path, image_column="label")


def test_hf_label_column_auto_finds_the_labels_or_reads_an_unlabelled_set(hf, tmp_path, caplog):
    import logging

    images = hf_set(hf)
    images.remove_columns(["label", "kind"]).save_to_disk(str(tmp_path / "bare"))  # a user's unlabelled set
    classes = hf.ClassLabel(names=["cat", "dog", "owl"])
    images.rename_column("label", "species").cast_column("species", classes).save_to_disk(str(tmp_path / "named"))
    images.rename_column("label", "y").save_to_disk(str(tmp_path / "ints"))  # integers, not a ClassLabel
    with caplog.at_level(logging.INFO):
        bare = data.HFImages(str(tmp_path / "bare"), image_size=8, workers=0)
    assert bare.labels is None and bare.n_classes == 0
    assert "dataset.label_column=auto: dataset.path=" in caplog.text and "read without labels" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        check_hf(data.HFImages(str(tmp_path / "named"), image_size=8, workers=0))  # the one ClassLabel column
    assert "the classes come from the column `species`" in caplog.text
    assert data.HFImages(str(tmp_path / "ints"), image_size=8, workers=0).labels is None  # no guessing at ints
    assert data.HFImages(str(tmp_path / "ints"), label_column="y", image_size=8, workers=0).n_classes == 3
    check_hf(data.HFImages(str(tmp_path / "ints"), label_column="y", image_size=8, workers=0))


def test_hf_class_label_names_and_missing_paths(hf, tmp_path):
    ds = hf_set(hf).cast_column("label", hf.ClassLabel(names=["cat", "dog", "owl", "yak"]))
    ds.save_to_disk(str(tmp_path / "saved"))
    loaded = data.HFImages(str(tmp_path / "saved"), image_size=8, workers=0)
    assert loaded.classes == ["cat", "dog", "owl", "yak"] and loaded.n_classes == 4  # from the feature, not max+1
    assert loaded.describe()["class_names"] == ["cat", "dog", "owl", "yak"]  # kept for `ganrun sample classes=[owl]`
    save_grey(tmp_path / "grey.png")
    with pytest.raises(data.DataError, match="neither a folder written by save_to_disk nor parquet.*dataset=folder"):
        data.HFImages(str(tmp_path))
    with pytest.raises(data.DataError, match="no such file or folder; give a folder written by save_to_disk"):
        data.HFImages(str(tmp_path / "typo" / "faces"))  # a path, not a Hub name: never sent to the Hub
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(data.DataError, match="bad.parquet: cannot read it as parquet"):
        data.HFImages(str(tmp_path / "bad.parquet"))


def test_hf_parquet_written_without_datasets(hf, tmp_path):
    """Parquet from other tools: images as raw bytes, or as {bytes, path} structs, with no HF metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = [png_bytes(i * 40) for i in range(4)]
    structs = [{"bytes": b, "path": f"{i}.png"} for i, b in enumerate(raw)]
    pq.write_table(pa.table({"png": raw, "img": structs, "y": [1, 0, 1, 0]}), tmp_path / "x.parquet")
    for column in ("png", "img"):
        ds = data.HFImages(str(tmp_path / "x.parquet"), image_column=column, label_column="y", image_size=8, workers=0)
        assert len(ds) == 4 and ds.shape == (1, 8, 8) and ds.labels.tolist() == [1, 0, 1, 0]
        x, y = next(ds.batches(4, CPU, labels=True))
        levels = levels_of(x.squeeze(1).add(1).mul(127.5).numpy())
        assert sorted(levels) == [0, 1, 2, 3] and [1 - level % 2 for level in levels] == y.tolist()


def test_hf_without_the_datasets_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(data.DataError) as e:
        data.HFImages(str(tmp_path))
    assert str(e.value) == "dataset=hf needs the datasets package: pip install 'ganrun[hf]'"


def test_hf_config_composes(hf, tmp_path):
    hf_set(hf).save_to_disk(str(tmp_path / "saved"))
    cfg = compose_train("dataset=hf", f"dataset.path={tmp_path / 'saved'}", "dataset.image_size=8",
                        "dataset.label_column=null", "model=mlp")
    loaded = build(cfg).data
    assert len(loaded) == 6 and loaded.labels is None
    with pytest.raises(config.ConfigError, match="dataset.path is required"):
        config.validate(compose_train("dataset=hf"))


def test_cli_trains_on_a_parquet_file(hf, tmp_path):
    hf_set(hf, 8).to_parquet(str(tmp_path / "set.parquet"))
    r, _ = run_train(tmp_path / "run", "dataset=hf", f"dataset.path={tmp_path / 'set.parquet'}",
                     "model.conditional=auto")
    assert "model.conditional=auto: G and D see the dataset's 3 class labels" in r.stdout + r.stderr
    hf_set(hf, 8).remove_columns(["label"]).to_parquet(str(tmp_path / "bare.parquet"))  # no labels, as most sets
    r, _ = run_train(tmp_path / "bare", "dataset=hf", f"dataset.path={tmp_path / 'bare.parquet'}")
    said = r.stdout + r.stderr
    assert "so it is read without labels" in said and "model.conditional=auto: G and D see" not in said


def test_channels_auto_is_rgb_when_any_image_is_in_colour(tmp_path):
    from PIL import Image

    from ganrun.data import ImageFolder

    Image.new("L", (8, 8), 40).save(tmp_path / "a_grey.png")  # sorted first: the old rule took grey from it
    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "b_red.jpg")
    assert ImageFolder(str(tmp_path), image_size=8).shape == (3, 8, 8)
    (tmp_path / "b_red.jpg").unlink()
    assert ImageFolder(str(tmp_path), image_size=8).shape == (1, 8, 8)


# ---------------------------------------------------------------- class names: sub-folders a user can ask for

def fruit_folder(root, n, halved=False):
    """Sub-folders apple (grey level 0) and plum (240) of n PNGs each; halved: every other image at half the
    level, so k-means has two clusters to find that cut across the classes."""
    for cls, level in (("apple", 0), ("plum", 240)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            (root / cls / f"{i}.png").write_bytes(png_bytes(level // 2 if halved and i % 2 == 0 else level))
    return root


def test_a_checkpoint_keeps_the_class_names_and_sample_takes_them(tmp_path):
    fruit_folder(tmp_path / "pics", 8)
    run_dir = tmp_path / "run"
    r, _ = run_train(run_dir, "dataset=folder", f"dataset.root={tmp_path / 'pics'}", "model.conditional=auto")
    assert "G and D see the dataset's 2 class labels, 0 apple, 1 plum (" in r.stdout + r.stderr
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["data"]["class_names"] == ["apple", "plum"]

    def sample(classes, name):
        out = tmp_path / f"{name}.npy"
        r = run_cli("sample", f"ckpt={run_dir}", f"classes={classes}", "n=4", f"out={out}")
        return r, (np.load(out) if r.returncode == 0 else None)

    by_name, by_number, other = sample("[plum]", "name")[1], sample("[1]", "number")[1], sample("[apple]", "other")[1]
    assert np.array_equal(by_name, by_number) and not np.array_equal(by_name, other)  # the name is its class
    r, _ = sample("[pear]", "typo")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "ganrun sample: error: classes=[pear]: no class named 'pear'; this checkpoint's classes: 0 apple, 1 plum"]
    r, _ = sample("[2]", "range")
    assert r.returncode == 2 and "give class numbers from 0 to 1 (0 apple, 1 plum)" in r.stderr


def test_a_class_name_may_differ_in_case_where_it_matches_one_class():
    from ganrun.commands.sample import class_numbers

    assert class_numbers(["PLUM", "apple", 0], ["apple", "plum"]) == [1, 0, 0]
    assert class_numbers(["Cat"], ["cat", "Cat"]) == [1]  # an exact match first
    with pytest.raises(config.ConfigError, match="no class named .CAT'; this checkpoint's classes: 0 cat, 1 Cat"):
        class_numbers(["CAT"], ["cat", "Cat"])  # two names it could be: neither


def test_class_names_are_the_labels_not_the_clusters(tmp_path):
    from ganrun.data import clusters

    fruit_folder(tmp_path, 4, halved=True)
    folder = data.ImageFolder(str(tmp_path), image_size=8, workers=0)
    assert folder.describe()["class_names"] == ["apple", "plum"]
    assert "class_names" not in clusters.wrap(folder, 2, 0).describe()  # G's classes are the clusters: no names
    from ganrun.metrics.evaluator import Evaluator

    assert Evaluator(clusters.wrap(folder, 2, 0)).class_names == ["apple", "plum"]  # the metrics' classes: the labels
    assert clusters.wrap(folder, 2, 0, within=True).describe()["class_names"] == ["apple", "plum"]
    flat = data.ImageFolder(str(tmp_path / "apple"), image_size=8, workers=0)
    assert "class_names" not in flat.describe()


def test_workers_auto_decodes_in_process_on_one_cpu(tmp_path, monkeypatch):
    from ganrun.data.streamed import settle_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    assert settle_workers("auto") == 0  # a second process would only share the one CPU (and torch warns)
    assert settle_workers(3) == 3  # a number given is kept
    save_grey(tmp_path / "a.png")
    assert data.ImageFolder(str(tmp_path), image_size=8).workers == 0
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert data.ImageFolder(str(tmp_path), image_size=8).workers == 2
    for bad in (-1, "two", 1.5):
        with pytest.raises(data.DataError, match=rf"dataset.workers={bad}: give a number of decoding processes"):
            settle_workers(bad)
