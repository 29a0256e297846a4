"""DiffAugment: each transform does what it says, differentiably, and reaches D through the config."""

import pytest
import torch
from conftest import TINY, TINY_MODEL, compose_train

from ganrun import config
from ganrun.config import ConfigError
from ganrun.training import augment
from ganrun.training.build import build
from ganrun.training.run import run


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


class Images:
    """A stand-in image set of n images."""

    pixels, name = True, "zip:mine"

    def __init__(self, n: int, channels: int = 3):
        self.n, self.shape = n, (channels, 32, 32)

    def __len__(self) -> int:
        return self.n


def test_auto_augments_a_gan_on_a_small_image_set_only(caplog):
    import logging

    from ganrun.training.build import augment_policy

    with caplog.at_level(logging.INFO):
        assert augment_policy(compose_train(), Images(3781)) == ["translation", "color"]
    assert "train.augment=auto: zip:mine has 3781 images" in caplog.text
    assert augment_policy(compose_train(), Images(60000)) == []
    assert augment_policy(compose_train(), Images(3781, channels=1)) == []  # grey: it hurt the digits
    assert not isinstance(build(compose_train(*TINY, *TINY_MODEL["dcgan"])).D, augment.Augmented)  # the default run
    points = Images(100)
    points.pixels = False
    assert augment_policy(compose_train(), points) == []
    assert augment_policy(compose_train("model=vae"), Images(3781)) == []  # the VAE has no D to augment
    assert augment_policy(compose_train("train.augment=[]"), Images(3781)) == []  # said: off
    assert augment_policy(compose_train("train.augment=[flip]"), Images(60000)) == ["flip"]  # said: on


def test_bad_augment_options():
    with pytest.raises(ConfigError, match=r"train.augment=flip: give a list of transforms"):
        config.validate(compose_train("train.augment=flip"))
    with pytest.raises(ConfigError, match="unknown transform 'flop'; use any of color, translation, cutout, flip"):
        config.validate(compose_train("train.augment=[flop]"))
    with pytest.raises(ConfigError, match=r"train.ada_target=0.6 adapts .* e.g. train.augment=\[flip"):
        config.validate(compose_train("train.augment=[]", "train.ada_target=0.6"))
    with pytest.raises(ConfigError, match="the target is in"):
        config.validate(compose_train("train.augment=[flip]", "train.ada_target=1.5"))
    with pytest.raises(ConfigError, match="images only"):
        build(compose_train("train.augment=[color]", "dataset=ring", "model=mlp"))


def test_flip_mirrors_about_half_of_the_images():
    torch.manual_seed(0)
    x = torch.randn(200, 1, 4, 4)
    y = augment.flip(x)
    mirrored = (y == x.flip(3)).flatten(1).all(1)
    kept = (y == x).flatten(1).all(1)
    assert bool((mirrored | kept).all()) and 70 < int(mirrored.sum()) < 130


class _Identity(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, *labels):
        return x * self.w


def test_adaptive_probability_gates_each_transform():
    D = augment.Augmented(_Identity(), ["flip", "translation", "cutout"])
    x = torch.randn(300, 1, 8, 8)
    D.p = torch.tensor(0.0)
    assert torch.equal(D(x), x)  # p = 0: D sees the images as they are
    D.p = torch.tensor(0.5)
    changed = (D(x) != x).flatten(1).any(1).float().mean()
    assert 0.7 < changed < 0.95  # each of 3 transforms with p = 1/2: 1 - 1/8 of the images touched, less flips of symmetric ones
    D.p = torch.tensor(1.0)
    assert (D(x) != x).flatten(1).any(1).all()


def test_ada_moves_p_by_the_sign_of_d_overfitting():
    from types import SimpleNamespace

    from ganrun.training.callbacks import AdaptiveAugment, Run

    def with_d(D):  # the callback as a run of batch 50 sets it up
        ada = AdaptiveAugment(target=0.6, kimg=1)
        ada.setup(Run(SimpleNamespace(D=D, batch_size=50, n_critic=1), None, None, 1, 100, None, {}, []))
        return ada

    D = augment.Augmented(_Identity(), ["flip"])
    ada = with_d(D)
    step = 50 * 4 / 1000  # images per interval over ada_kimg * 1000
    for i in range(1, 9):  # D calls every real image real: overfitting, p goes up each 4 steps
        out = {"health/d_real_sign": torch.tensor(1.0)}
        ada.after_step(i, out)
    assert torch.isclose(D.p, torch.tensor(2 * step)) and torch.isclose(out["ada/p"], torch.tensor(2 * step))
    for i in range(9, 21):  # r = 0.2 < 0.6: p comes down, and stops at 0
        ada.after_step(i, {"health/d_real_sign": torch.tensor(0.2)})
    assert D.p.item() == 0.0 and D.idle  # p back at 0: D skips the transforms
    calls = []
    augment.POLICIES["flip"], real_flip = (lambda x: calls.append(1) or x), augment.POLICIES["flip"]
    try:
        D(torch.randn(4, 1, 8, 8))
        assert calls == []  # nothing computed while p is 0
        for i in range(21, 25):
            ada.after_step(i, {"health/d_real_sign": torch.tensor(1.0)})
        assert not D.idle and D.p.item() > 0
        D(torch.randn(4, 1, 8, 8))
        assert calls == [1]
        for i in range(25, 29):
            ada.after_step(i, {"health/d_real_sign": torch.tensor(0.0)})
    finally:
        augment.POLICIES["flip"] = real_flip
    ckpt: dict = {}
    ada.after_step(21, {"health/d_real_sign": torch.tensor(1.0)})
    ada.save(ckpt)
    again = with_d(augment.Augmented(_Identity(), ["flip"]))
    again.restore(ckpt)
    assert len(again.signs) == 1 and again.D.p.item() == 0.0 and again.D.idle


def test_ada_trains_logs_p_and_resumes_exactly(tmp_path):
    from ganrun.artifacts import checkpoint

    over = ["train.augment=[flip,translation]", "train.ada_target=0.1", "train.ada_kimg=1", *TINY,
            *TINY_MODEL["dcgan"], "train.steps=8", "train.ckpt_every=4", "train.clusters=0"]
    straight = run(compose_train(*over), tmp_path / "a")
    assert "ada/p" in straight["stats"] and straight["stats"]["ada/p"] > 0  # a tiny D overfits at once
    run(compose_train(*over, "train.steps=4"), tmp_path / "b")
    run(compose_train(*over, f"resume={tmp_path / 'b'}"), tmp_path / "b")
    a, b = checkpoint.load(tmp_path / "a"), checkpoint.load(tmp_path / "b")
    assert torch.equal(a["ada"]["p"], b["ada"]["p"])
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])
