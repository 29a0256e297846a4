"""train.recipe=auto: the colour recipe taken by the runs it was measured on, for the keys the command line
left unset, said in one line, kept by a resumed run, and nowhere else."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import TINY, compose_train
from omegaconf import OmegaConf
from PIL import Image

from ganrun.artifacts import checkpoint
from ganrun.commands import cli
from ganrun.config import ConfigError, validate
from ganrun.training import precision, recipes
from ganrun.training.recipes import recipe_keys, settle_recipe

SHIPPED = {"train.precision": "32", "train.steps": 4500, "model.g_width": None, "optimizer.lr_g": 2e-4,
           "optimizer.lr_d": 2e-4}


def colour32(shape=(3, 32, 32)) -> SimpleNamespace:
    return SimpleNamespace(pixels=True, shape=shape, name="mine")


def cpu(tmp_path: Path, bf16: bool) -> str:
    """A /proc/cpuinfo stand-in: a CPU with or without bfloat16 in hardware."""
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu sse avx2" + (" avx512_bf16" if bf16 else "") + "\n")
    return str(path)


def values(cfg) -> dict:
    return {key: OmegaConf.select(cfg, key) for key in SHIPPED}


def test_the_recipe_is_the_experiment_files_keys_and_the_default_is_as_shipped():
    text = OmegaConf.load(Path(recipes.__file__).parents[1] / "configs" / "experiment" / "colour32.yaml")
    keys = recipe_keys()
    assert keys["train.steps"] == text.train.steps and keys["model.g_width"] == text.model.g_width
    assert keys["optimizer.lr_g"] == text.optimizer.lr_g and keys["train.precision"] == "auto"
    assert "model.conditional" not in keys and set(keys) == set(SHIPPED)
    cfg = compose_train()
    assert cfg.train.recipe == "auto" and values(cfg) == SHIPPED


def test_taken_on_colour_clusters_with_bfloat16_for_the_keys_not_given(tmp_path, caplog):
    cfg = compose_train("train.steps=300")
    with caplog.at_level(logging.INFO, logger="ganrun"):
        taken = settle_recipe(cfg, colour32(), True, "cpu", ["train.steps=300", "dataset=zip"], cpu(tmp_path, True))
    assert set(taken) == set(SHIPPED) - {"train.steps"}
    assert values(cfg) == {**recipe_keys(), "train.steps": 300}
    line = next(r.message for r in caplog.records if "train.recipe=auto" in r.message)
    assert "colour recipe" in line and "train.steps as given" in line and "model.g_width=32" in line


@pytest.mark.parametrize("why, args", [
    ("grey", (colour32((1, 32, 32)), True, "cpu", [])),
    ("64 px", (colour32((3, 64, 64)), True, "cpu", [])),
    ("labels, not clusters", (colour32(), False, "cpu", [])),
    ("from Python, overrides unknown", (colour32(), True, "cpu", None)),
    ("an experiment named", (colour32(), True, "cpu", ["experiment=colour32"])),
])
def test_not_taken_where_it_was_not_measured(tmp_path, why, args):
    cfg = compose_train()
    assert settle_recipe(cfg, *args, cpuinfo=cpu(tmp_path, True)) == {}, why
    assert values(cfg) == SHIPPED


@pytest.mark.parametrize("overrides, where, said", [
    ([], "cpu", "this CPU does not compute bfloat16"),
    (["train.precision=32"], "cpu", "train.precision=32 as given"),
    ([], "cuda", "not measured on cuda"),
])
def test_not_taken_without_bfloat16_says_why(tmp_path, caplog, overrides, where, said):
    cfg = compose_train(*overrides)
    with caplog.at_level(logging.INFO, logger="ganrun"):
        assert settle_recipe(cfg, colour32(), True, where, overrides, cpu(tmp_path, not overrides and where != "cpu")) == {}
    assert values(cfg) == {**SHIPPED, "train.precision": cfg.train.precision}
    assert any(said in r.message and "not taken" in r.message for r in caplog.records)


def test_off_and_other_models_leave_the_keys(tmp_path):
    for overrides in (["train.recipe=off"], ["loss=hinge"], ["model=resnet"], ["optimizer=rmsprop"]):
        cfg = compose_train(*overrides)
        before = values(cfg)
        assert settle_recipe(cfg, colour32(), True, "cpu", overrides, cpu(tmp_path, True)) == {}, overrides
        assert values(cfg) == before


def test_a_bad_value_is_one_line():
    with pytest.raises(ConfigError, match="train.recipe='on': use auto or off"):
        validate(compose_train("train.recipe=on"))


def test_a_users_colour_folder_takes_it_and_a_resume_keeps_it(tmp_path, monkeypatch):
    """As typed: `ganrun train dataset=folder dataset.root=pics` on 500 colour images of 32 px (clusters=auto)
    with bfloat16 in hardware, then the resume ganrun prints: the recipe's keys in the checkpoint, G built at its
    width, and the resumed run keeps them without settling anything again."""
    monkeypatch.setattr(recipes, "native_bf16_cpu", lambda *a: "avx512_bf16")
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda *a: "avx512_bf16")
    rng = np.random.default_rng(0)
    (tmp_path / "pics").mkdir()
    for i in range(500):
        colour = rng.integers(0, 256, 3, dtype=np.uint8)
        Image.fromarray(np.broadcast_to(colour, (32, 32, 3)).copy()).save(tmp_path / "pics" / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    small = [*TINY, "model.width=4", "model.latent_dim=8", "train.eval_n=100", "dataset.workers=0"]
    with _no_exit():
        cli.main(["train", "dataset=folder", "dataset.root=pics", "dataset.image_size=32", *small])
    said = (tmp_path / "outputs" / "latest" / "train.log").read_text()
    assert "so the run takes the colour recipe" in said and "train.steps as given" in said
    ckpt = checkpoint.load(tmp_path / "outputs" / "latest")
    saved = ckpt["config"]
    assert saved["train"]["steps"] == 4 and saved["train"]["precision"] == "auto"  # steps as given
    assert saved["model"]["g_width"] == 32 and saved["optimizer"]["lr_g"] == saved["optimizer"]["lr_d"] == 1e-3
    last_conv = [v for k, v in ckpt["G"].items() if k.endswith("weight") and v.dim() == 4][-1]
    assert tuple(last_conv.shape[:2]) == (32, 3)  # G at the recipe's width 32, D at the given 4
    with _no_exit():
        cli.main(["train", "resume=outputs/latest", "train.steps=6"])
    resumed = (tmp_path / "outputs" / "latest" / "train.log").read_text()[len(said):]
    assert "resume: steps 5 to 6" in resumed and "train.recipe" not in resumed
    again = checkpoint.load(tmp_path / "outputs" / "latest")
    assert again["step"] == 6 and again["config"]["model"]["g_width"] == 32
    assert again["config"]["optimizer"]["lr_g"] == 1e-3


@contextlib.contextmanager
def _no_exit():
    """cli.main ends in sys.exit(0) after a run: that is success here."""
    try:
        yield
    except SystemExit as e:
        assert e.code in (0, None), e.code
