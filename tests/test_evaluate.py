"""The classifier cache and the evaluator on real data."""

import math

import pytest
import torch

from conftest import compose_train
from ganrun import classifier, data
from ganrun.build import build
from ganrun.evaluate import Evaluator


def test_classifier_is_trained_once_then_loaded(monkeypatch):
    train, test = data.mnist_sample(split="train"), data.mnist_sample(split="test")
    assert len(train) == 4000 and len(test) == 1000 and torch.bincount(test.labels).tolist() == [100] * 10
    net, info = classifier.load_or_train("mnist-sample-28px", train, test)
    assert info["test_accuracy"] > 0.9 and len(info["weights_sha256"]) == 64

    def no_training(*a, **k):
        raise AssertionError("the cached classifier should have been used")

    monkeypatch.setattr(classifier, "fit_classifier", no_training)
    again, info2 = classifier.load_or_train("mnist-sample-28px", train, test)
    assert info2 == info
    assert classifier.weights_digest(again) == info["weights_sha256"]
    # another data set never reuses it
    with pytest.raises(AssertionError, match="cached classifier"):
        classifier.load_or_train("mnist-sample-28px", test, test)


class Replay(torch.nn.Module):
    """A 'generator' that returns real images (in [-1, 1]) whatever z is: the ideal G."""

    def __init__(self, images):
        super().__init__()
        self.images = images.float().div(127.5).sub(1)
        self.latent_dim = 4
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.i = 0

    def forward(self, z):
        out = self.images[self.i:self.i + len(z)]
        self.i += len(z)
        return out


def test_real_images_score_well_and_a_collapsed_generator_does_not():
    cfg = compose_train()
    exp_data = build(cfg).data
    ev = Evaluator(cfg.dataset, exp_data, n_images=1000)
    assert ev.settings["samples"] == 1000 and "weights_sha256" in ev.settings
    train = data.mnist_sample(split="train")
    real = ev(Replay(train.images[torch.randperm(4000)[:1000]]))
    assert real["classes"] == 10 and real["class_kl"] < 0.05
    collapsed = ev(Replay(train.images[:1].expand(1000, -1, -1, -1)))  # one zero, a thousand times
    assert collapsed["classes"] == 1
    assert collapsed["fd"] > 10 * real["fd"] and collapsed["kid"] > 10 * real["kid"]


def test_toy_evaluator_uses_the_protocol():
    cfg = compose_train("dataset=grid", "model=mlp")
    ev = Evaluator(cfg.dataset, build(cfg).data)
    assert ev.settings["samples"] == 2500


def test_stacked_mnist_channels_and_labels():
    ds = data.stacked_mnist(source="mnist-sample", n=500)
    assert ds.images.shape == (500, 3, 28, 28) and ds.labels.max() < 1000
    digits = ds.digits
    # every channel is a real digit whose label is the matching decimal place of the stacked label
    for i in range(5):
        for c, place in enumerate((100, 10, 1)):
            matches = (digits.images[:, 0] == ds.images[i, c]).all(-1).all(-1)
            assert (digits.labels[matches] == ds.labels[i] // place % 10).any()
    assert len(ds.labels.unique()) > 300  # 500 random triples of 10 digits: mostly distinct modes


def test_stacked_mnist_evaluation_counts_digit_triples():
    cfg = compose_train("dataset=stacked-mnist", "dataset.source=mnist-sample", "dataset.n=2000")
    ds = build(cfg).data
    ev = Evaluator(cfg.dataset, ds)
    assert ev.settings["samples"] == 26000 and "weights_sha256" in ev.settings
    real = data.stacked_mnist(source="mnist-sample", split="test", n=26000, seed=5)
    scores = ev(Replay(real.images))
    assert scores["modes"] > 950 and scores["mode_kl"] < 0.2
    one = ev(Replay(real.images[:1].expand(26000, -1, -1, -1)))
    assert one["modes"] == 1 and one["mode_kl"] == pytest.approx(math.log(1000), rel=1e-6)
