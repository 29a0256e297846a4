"""DiffAugment: each transform does what it says, differentiably, and reaches D through the config."""

import pytest
import torch

from conftest import TINY, TINY_MODEL, compose_train
from ganrun import augment, config
from ganrun.build import build
from ganrun.config import ConfigError
from ganrun.train import run


def test_translation_moves_pixels_and_fills_zeros():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    y = augment.translation(x)
    assert y.shape == x.shape
    peaks = [divmod(int(img.argmax()), 16) for img in y[:, 0]]
    assert all(abs(r - 8) <= 2 and abs(c - 8) <= 2 for r, c in peaks)  # up to 1/8 of 16 px
    assert len(set(peaks)) > 5 and (y.sum(dim=(1, 2, 3)) == 1).all()  # moved, not lost


def test_translation_at_an_edge_fills_with_zero():
    x = torch.ones(200, 1, 8, 8)
    y = augment.translation(x)
    assert (y == 0).any() and set(y.unique().tolist()) <= {0.0, 1.0}


def test_cutout_zeroes_one_square():
    torch.manual_seed(0)
    x = torch.ones(32, 3, 16, 16)
    y = augment.cutout(x)
    zeros = (y[:, 0] == 0).sum(dim=(1, 2))
    assert (zeros > 0).all() and (zeros <= 64).all()  # at most an 8 x 8 square, clipped at the edges
    assert (y[:, 0] == y[:, 1]).all()  # the same square in every channel


def test_color_changes_brightness_and_contrast_per_sample():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8) * 2 - 1
    y = augment.color(x)
    assert not torch.allclose(y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)))
    assert y.shape == x.shape


@pytest.mark.parametrize("name", list(augment.POLICIES))
def test_transforms_are_differentiable(name):
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    augment.POLICIES[name](x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_augment_reaches_d_and_trains(tmp_path):
    cfg = compose_train("train.augment=[color,translation,cutout]", *TINY, *TINY_MODEL["dcgan"])
    exp = build(cfg)
    assert isinstance(exp.D, augment.Augmented) and exp.D.policy == ["color", "translation", "cutout"]
    assert run(cfg, tmp_path)["status"] == "completed"


def test_bad_augment_options():
    with pytest.raises(ConfigError, match="unknown transform 'flip'; use any of color, translation, cutout"):
        config.validate(compose_train("train.augment=[flip]"))
    with pytest.raises(ConfigError, match="images only"):
        build(compose_train("train.augment=[color]", "dataset=ring", "model=mlp"))
