"""train.aux_classifier: where auto turns D's class head on, what a number does, that a resumed run keeps what
it was built with, and the one-line errors."""

import logging

import pytest
import torch

from conftest import TINY, TINY_MODEL, compose_train
from ganrun.artifacts import checkpoint
from ganrun.config import ConfigError
from ganrun.training.build import build
from ganrun.training.regularizers import AuxClassifier
from ganrun.training.run import run
from test_clusters import colour_folder


def aux_weights(exp) -> list[float]:
    return [r.weight for r in exp.objective.regularizers if isinstance(r, AuxClassifier)]


def has_head(exp) -> bool:
    D = getattr(exp.D, "D", exp.D)  # behind DiffAugment on the small colour sets
    return D.class_head is not None


@pytest.fixture
def folders(tmp_path):
    """(labelled colour folder overrides, unlabelled colour folder overrides)."""
    for c in ("a", "b"):
        colour_folder(tmp_path / "set" / c, n=20)
    common = ["dataset=folder", "dataset.image_size=32", "dataset.workers=0"]
    return ([*common, f"dataset.root={tmp_path / 'set'}"],
            [*common, f"dataset.root={colour_folder(tmp_path / 'flat')}"])


def test_auto_reads_the_class_on_the_labels_of_colour_images_only(folders, caplog):
    labelled, flat = folders

    def built(*overrides):
        exp = build(compose_train(*TINY, *TINY_MODEL["dcgan"], *overrides))
        assert has_head(exp) == bool(aux_weights(exp)) == exp.model.get("class_head", False)
        return aux_weights(exp)

    with caplog.at_level(logging.INFO):
        assert built(*labelled) == [1.0]
    assert "train.aux_classifier=auto: G and D are conditioned on the labels of colour images" in caplog.text
    caplog.clear()
    assert built(*labelled, "dataset.channels=1") == []  # grey labelled images: not measured there
    assert built() == []  # the grey digits' labels: the default run as it was measured
    assert built(*flat, "train.clusters=4") == []  # clusters of colour images
    assert built(*labelled, "model.conditional=false") == []  # the labels not used: nothing to read
    assert built(*labelled, "train.aux_classifier=0") == []
    assert "train.aux_classifier=auto" not in caplog.text
    assert built(*flat, "train.clusters=4", "train.aux_classifier=0.5") == [0.5]  # a number: on any conditional DCGAN
    assert built("train.aux_classifier=2") == [2.0]


@pytest.mark.parametrize("overrides, message", [
    (["model.conditional=false", "train.clusters=0", "train.aux_classifier=1"],
     "train.aux_classifier=1: D reads the class only in a conditional model=dcgan"),
    (["model=resnet", "dataset.image_size=32", "train.aux_classifier=0.5"],
     "train.aux_classifier=0.5: D reads the class only in a conditional model=dcgan"),
    (["train.aux_classifier=-1"], "train.aux_classifier=-1: use auto, 0 \\(off\\) or a weight > 0"),
    (["train.aux_classifier=lots"], "train.aux_classifier=lots: use auto, 0 \\(off\\) or a weight > 0"),
])
def test_aux_classifier_refuses_what_it_cannot_do_in_one_line(overrides, message):
    from ganrun.config.validate import validate

    with pytest.raises(ConfigError, match=message):
        cfg = compose_train(*TINY, *overrides)
        validate(cfg)
        build(cfg)


def test_a_run_keeps_its_class_head_through_a_resume_and_an_old_checkpoint_goes_on_without(folders, tmp_path, caplog):
    labelled, _ = folders
    cfg = compose_train(*TINY, *TINY_MODEL["dcgan"], *labelled, "train.steps=2")
    assert run(cfg, tmp_path / "run")["status"] == "completed"
    ckpt = checkpoint.load(tmp_path / "run")
    assert ckpt["aux_classifier"] == 1.0 and ckpt["config"]["model"]["class_head"] is True
    assert any("class_head" in k for k in ckpt["D"])  # the head's weights are saved with D
    caplog.clear()
    with caplog.at_level(logging.INFO):  # the run's own command to continue it
        assert run(compose_train("train.steps=3", f"resume={tmp_path / 'run'}"), tmp_path / "run")["status"] \
            == "completed"
    assert "train.aux_classifier=1)" in caplog.text and "train.aux_classifier=auto:" not in caplog.text
    ckpt["aux_classifier"] = 0.25  # what the run settled to, whatever the rules say now
    assert aux_weights(build(cfg, ckpt)) == [0.25]
    del ckpt["aux_classifier"], ckpt["config"]["model"]["class_head"]  # as a checkpoint from before the key
    exp = build(cfg, ckpt)
    assert aux_weights(exp) == [] and not has_head(exp)
    exp.D.load_state_dict({k: v for k, v in ckpt["D"].items() if "class_head" not in k})  # its D as it was


def test_a_custom_regularizer_yaml_cannot_add_the_term_without_the_head():
    cfg = compose_train(*TINY, "+regularizers.aux._target_=ganrun.training.regularizers.AuxClassifier")
    with pytest.raises(ConfigError, match="regularizers.aux: the auxiliary classifier is set by train.aux_classifier"):
        build(cfg)


def test_the_commands_rebuild_d_with_its_class_head_from_the_checkpoint(folders, tmp_path):
    from ganrun.artifacts.networks import load_discriminator, load_generator

    labelled, _ = folders
    assert run(compose_train(*TINY, *TINY_MODEL["dcgan"], *labelled, "train.steps=2"), tmp_path / "run")["status"] \
        == "completed"
    ckpt = checkpoint.load(tmp_path / "run")
    D, G = load_discriminator(ckpt, torch.device("cpu")), load_generator(ckpt, torch.device("cpu"))
    y = torch.tensor([0, 1])
    D(G(torch.randn(2, G.latent_dim), y), y)
    assert D.class_logits.shape == (2, 2)
