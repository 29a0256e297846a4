"""The classifier cache and the evaluator on real data."""

import math

import pytest
import torch
from conftest import compose_train
from torchvision.transforms.functional import gaussian_blur

from ganrun import data
from ganrun.data import to_unit_range as unit
from ganrun.metrics import classifier, features
from ganrun.metrics.evaluator import Evaluator
from ganrun.training.build import build


def test_classifier_is_trained_once_then_loaded(monkeypatch):
    monkeypatch.setattr(classifier, "MIN_UPDATES", {"classes": 0, "rotation": 0})  # 3 epochs: the cache is tested
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
    # the same images under another name (a renamed file) reuse it; another data set never does
    renamed, info3 = classifier.load_or_train("zip:digits-28px", train, test)
    assert info3 == info and classifier.weights_digest(renamed) == info["weights_sha256"]
    with pytest.raises(AssertionError, match="cached classifier"):
        classifier.load_or_train("mnist-sample-28px", test, test)


class Replay(torch.nn.Module):
    """A 'generator' that returns real images (in [-1, 1]) whatever z is: the ideal G."""

    def __init__(self, images):
        super().__init__()
        self.images = images.float().div(127.5).sub(1)
        self.latent_dim, self.n_classes, self.pseudo_classes = 4, 0, False  # what every G says
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.i = 0

    def forward(self, z):
        out = self.images[self.i:self.i + len(z)]
        self.i += len(z)
        return out


@pytest.fixture(scope="module")
def digits():
    """The run's dataset (the offline 5,000-digit MNIST sample), its evaluator at n = 1,000, and 1,000 real
    digits in [-1, 1] that are not the ones the floor is drawn from, with their labels."""
    cfg = compose_train()
    ds = build(cfg).data
    ev = Evaluator(ds, n_images=1000)
    idx = torch.randperm(5000, generator=torch.Generator().manual_seed(5))
    return ev, ds, unit(ds.images[idx]), ds.labels[idx]


def test_the_offline_default_is_scored_by_the_shipped_network_against_the_mnist_test_split(digits):
    ev, _, _, _ = digits
    assert isinstance(ev.suite.net, features.FeatureNet)  # nothing trained at first use
    assert ev.settings["reference"] == "mnist test split (10000 images)"
    assert ev.settings["feature_net_test_accuracy"] >= 0.99
    assert ev.settings["weights_sha256"] == features.SHIPPED["mnist"]


def test_real_digits_score_near_the_floor_with_precision_and_recall_near_1(digits):
    ev, _, real, _ = digits
    scores, floor = ev.score(real[:1000])
    assert floor["fd"] < 10 and scores["fd"] < 2 * floor["fd"]
    for key in ("precision", "recall", "density", "coverage"):
        assert scores[key] > 0.8 and abs(scores[key] - floor[key]) < 0.1, key
    assert scores["classes"] == 10 and scores["class_kl"] < 0.02 and scores["confident"] > 0.95
    assert 0.9 < scores["class_diversity"] < 1.1


def test_half_of_the_classes_keeps_precision_and_loses_recall_and_coverage(digits):
    ev, _, real, labels = digits
    scores, floor = ev.score(real[labels < 5][:1000])
    assert scores["precision"] > floor["precision"] - 0.05
    assert scores["recall"] < 0.6 * floor["recall"] and scores["coverage"] < 0.6 * floor["coverage"]
    assert scores["class_kl"] > 0.5 and scores["fd"] > 20 * floor["fd"]


def test_a_blurred_set_keeps_the_classes_and_loses_precision(digits):
    ev, _, real, _ = digits
    scores, floor = ev.score(gaussian_blur(real[:1000], 5, 1.0))
    assert scores["classes"] == 10 and scores["class_kl"] < 0.05
    assert scores["precision"] < floor["precision"] - 0.03 and scores["density"] < 0.8 * floor["density"]
    assert scores["fd"] > 20 * floor["fd"]


def test_noise_is_worst_on_every_score(digits):
    ev, _, real, labels = digits
    sets = {"real": real[:1000], "half": real[labels < 5][:1000], "blurred": gaussian_blur(real[:1000], 5, 1.0),
            "noise": torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1}
    scores = {name: ev.score(x)[0] for name, x in sets.items()}
    lower_is_better = ("fd", "kid", "class_kl")
    for key in (*lower_is_better, "precision", "recall", "density", "coverage", "confidence", "confident"):
        values = {name: s[key] for name, s in scores.items()}
        worst = max(values, key=values.get) if key in lower_is_better else min(values, key=values.get)
        assert values["noise"] == values[worst], (key, values)


def test_a_conditional_generator_that_ignores_z_is_flagged(digits):
    ev, ds, _, _ = digits
    one_per_class = torch.stack([unit(ds.images[(ds.labels == c).nonzero()[0, 0]]) for c in range(10)])
    labels = torch.arange(1000) % 10
    scores, floor = ev.score(one_per_class[labels], labels)  # every class drawn as itself, one image each
    assert scores["hit_rate"] > 0.9  # the hit rate alone would pass it
    assert scores["class_diversity"] < 0.05 < 0.9 < floor["class_diversity"]  # within-class diversity does not
    assert scores["intra_fd"] > 10 * floor["intra_fd"] and scores["recall"] < 0.1
    assert 0.9 < floor["hit_rate"] <= 1 and len(ev.per_class["hit_rate"]) == 10


def test_a_conditional_generator_drawing_the_wrong_digit_has_a_low_hit_rate(digits):
    ev, _, real, labels = digits
    asked = (labels[:1000] + 1) % 10  # each sample labelled with the next digit
    scores, _ = ev.score(real[:1000], asked)
    assert scores["hit_rate"] < 0.05 and ev.per_class["hit_rate"][3] < 0.05


def test_the_evaluator_scores_a_generator_with_its_floor(digits):
    ev, _, real, _ = digits
    scores, floor = ev(Replay(ds_images(real)))
    assert set(scores) == set(floor) >= {"fd", "kid", "precision", "recall", "density", "coverage", "classes",
                                          "class_kl", "confidence", "confident", "class_diversity"}
    assert scores["fd"] < 2 * floor["fd"]
    collapsed, _ = ev(Replay(ds_images(real[:1].expand(1000, -1, -1, -1))))  # one digit, a thousand times
    assert collapsed["classes"] == 1 and collapsed["fd"] > 50 * floor["fd"] and collapsed["recall"] < 0.01


def ds_images(x):
    """[-1, 1] floats back to uint8, as Replay takes them."""
    return x.add(1).mul(127.5).round().to(torch.uint8)


def test_a_labelled_set_without_a_shipped_network_trains_one_on_first_use(monkeypatch):
    monkeypatch.setattr(features, "FOR_DATASET", {})  # as for cifar10: nothing shipped
    cfg = compose_train()
    ds = build(cfg).data
    ev = Evaluator(ds, n_images=500)
    assert ev.settings["features"].startswith("SmallCNN") and ev.settings["feature_net_test_accuracy"] > 0.9
    assert ev.settings["reference"] == "mnist-sample-28px test split (1000 images)"
    scores, floor = ev(Replay(ds.images[torch.randperm(5000, generator=torch.Generator().manual_seed(3))[:500]]))
    assert scores["classes"] == 10 and scores["fd"] < 3 * floor["fd"] and scores["precision"] > 0.7


def test_toy_evaluator_uses_the_protocol():
    cfg = compose_train("dataset=grid", "model=mlp")
    ev = Evaluator(build(cfg).data)
    assert ev.settings["samples"] == 2500
    floor = ev.floor(2500, conditional=False)  # 2,500 draws of the mixture itself
    assert floor["modes"] == 25 and 98 < floor["hq_percent"] < 99.7 and floor["reverse_kl"] < 0.02


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


@pytest.mark.slow  # 27 s
def test_stacked_mnist_evaluation_counts_digit_triples(monkeypatch):
    from ganrun.metrics import evaluator as evaluate

    assert evaluate.STACKED_SAMPLES == 26000  # the protocol's count; 6,000 here keeps the test quick
    monkeypatch.setattr(evaluate, "STACKED_SAMPLES", 6000)
    cfg = compose_train("dataset=stacked-mnist", "dataset.source=mnist-sample", "dataset.n=2000")
    ds = build(cfg).data
    ev = Evaluator(ds)
    assert ev.settings["samples"] == 6000 and ev.settings["weights_sha256"] == features.SHIPPED["mnist"]
    real = data.stacked_mnist(source="mnist-sample", split="test", n=6000, seed=5)
    scores, floor = ev(Replay(real.images))
    # 6,000 draws of 1,000 equally likely triples leave about 2 uncovered; the classifier misreads few
    assert scores["modes"] > 950 and scores["mode_kl"] < 0.25
    # the floor scores the 2,000 training triples themselves: about as many modes as distinct triples
    assert abs(floor["modes"] - len(ds.labels.unique())) <= 20
    one, _ = ev(Replay(real.images[:1].expand(6000, -1, -1, -1)))
    assert one["modes"] == 1 and one["mode_kl"] == pytest.approx(math.log(1000), rel=1e-6)


def test_a_small_labelled_set_trains_its_classifier_longer_up_to_a_cap():
    # 3 epochs of a 3,025-image set are 72 updates, too few to learn 9 categories: it gets 20 (480 updates)
    assert classifier.epochs_for(3025, "classes") == 20
    assert classifier.epochs_for(4000, "classes") == 15  # 32 batches an epoch: 480 updates
    assert classifier.epochs_for(60000, "classes") == 3  # a large set keeps its 3 epochs (1,407 updates)
    assert classifier.epochs_for(100, "classes") == 20  # one batch an epoch: the cap, not 480 epochs
    assert classifier.epochs_for(3025, "rotation") == 4  # the self-supervised task is unchanged
