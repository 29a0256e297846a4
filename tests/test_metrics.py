"""Metrics on constructed data with known answers."""

import math

import pytest
import torch

from ganrun import data
from ganrun.metrics import scores as metrics


def test_true_mixture_covers_every_mode():
    grid = data.grid()
    samples = grid.sample(2500, torch.Generator().manual_seed(0))
    m = metrics.toy_metrics(samples, grid.centers, grid.sigma)
    assert m["modes"] == 25
    assert 98.0 < m["hq_percent"] < 99.7  # 3 sigma in 2-D holds 1 - exp(-4.5) = 98.9% of the mass
    assert m["reverse_kl"] < 0.02


def test_collapsed_set_covers_one_mode():
    ring = data.ring()
    samples = ring.centers[3].expand(2500, 2) + 0.001 * torch.randn(2500, 2)
    m = metrics.toy_metrics(samples, ring.centers, ring.sigma)
    assert m["modes"] == 1 and m["hq_percent"] == 100.0
    assert m["reverse_kl"] == pytest.approx(math.log(8))  # a point mass against uniform over 8


def test_far_samples_are_not_high_quality():
    ring = data.ring()
    samples = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.02, 0.0], [1.05, 0.0]])  # 0, 0, 2 and 5 sigma off mode 0
    m = metrics.toy_metrics(samples, ring.centers, ring.sigma)
    assert m["hq_percent"] == 50.0 and m["modes"] == 1


def test_kl_on_hand_made_histograms():
    assert metrics.kl_to_uniform(torch.tensor([5, 5, 5, 5])) == pytest.approx(0.0)
    # p = (1/2, 1/2, 0, 0): sum p log(4p) = log 2
    assert metrics.kl_to_uniform(torch.tensor([3, 3, 0, 0])) == pytest.approx(math.log(2))
    # p = (3/4, 1/4): 3/4 log(3/2) + 1/4 log(1/2)
    assert metrics.kl_to_uniform(torch.tensor([3, 1])) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert metrics.kl_to_uniform(torch.tensor([0, 0])) == math.inf


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    torch.manual_seed(0)
    a = torch.randn(2000, 8) @ torch.randn(8, 8)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([3.0, 4.0] + [0.0] * 6)
    # same covariance, means 5 apart: FD = ||shift||^2 = 25 exactly
    assert metrics.frechet_distance(a, a + shift) == pytest.approx(25.0, rel=1e-6)
    assert metrics.frechet_distance(a, a + 2 * shift) > metrics.frechet_distance(a, a + shift)


def test_frechet_distance_of_scaled_gaussians():
    # N(0, I) vs N(0, 4I) in d dims: Tr(I + 4I - 2*2I) = d (up to sampling noise)
    torch.manual_seed(1)
    a, b = torch.randn(20000, 4), 2 * torch.randn(20000, 4)
    assert metrics.frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    torch.manual_seed(0)
    a, b = torch.randn(3000, 16), torch.randn(3000, 16)
    same = metrics.kid(a, b)
    assert abs(same) < 0.01
    assert metrics.kid(a, b + 0.5) > 0.05 > same


def test_class_metrics_on_hand_made_probabilities():
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.3, 0.7, 0.0], [0.6, 0.4, 0.0]])
    m = metrics.class_metrics(probs)
    assert m["classes"] == 2
    assert m["confidence"] == pytest.approx((0.9 + 0.8 + 0.7 + 0.6) / 4)
    assert m["confident"] == 0.0  # no top probability over 0.9
    assert metrics.class_metrics(probs, confident=0.75)["confident"] == 0.5
    # predicted histogram (3, 1, 0) of 4 against uniform over 3
    assert m["class_kl"] == pytest.approx(0.75 * math.log(0.75 * 3) + 0.25 * math.log(0.25 * 3))


def test_frechet_from_stats_matches_the_sample_version():
    torch.manual_seed(1)
    a, b = torch.randn(500, 6), 2 * torch.randn(400, 6) + 1
    assert metrics.frechet_from_stats(*metrics.gaussian_stats(a), *metrics.gaussian_stats(b)) == pytest.approx(
        metrics.frechet_distance(a, b), rel=1e-12)


def test_knn_radii_on_points_on_a_line():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    # k = 1: the nearest other point; k = 2: the second nearest
    torch.testing.assert_close(metrics.knn_radii(x, 1), torch.tensor([1.0, 1.0, 2.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(metrics.knn_radii(x, 2), torch.tensor([3.0, 2.0, 3.0, 6.0], dtype=torch.float64))


def test_prdc_on_hand_made_points():
    real = torch.tensor([[0.0], [1.0], [3.0], [7.0]])  # k = 1 radii: 1, 1, 2, 4
    fake = torch.tensor([[0.5], [20.0]])  # 0.5 lies in the balls of reals 0 and 1; 20 in none
    m = metrics.prdc(real, fake, k=1)
    assert m["precision"] == 0.5
    assert m["density"] == pytest.approx((2 + 0) / 2 / 1)
    assert m["coverage"] == 0.5  # the balls of reals 0 and 1 hold a fake
    # fake radii (k = 1): both 19.5; every real is within 19.5 of a fake
    assert m["recall"] == 1.0


def test_prdc_agrees_with_the_prdc_package():
    prdc = pytest.importorskip("prdc")
    torch.manual_seed(2)
    real = torch.randn(700, 8)
    fake = 1.3 * torch.randn(500, 8) + 0.4
    ours = metrics.prdc(real, fake, k=3, chunk=256)  # chunks smaller than the sets: the loop is exercised
    theirs = prdc.compute_prdc(real.numpy().astype("float64"), fake.numpy().astype("float64"), nearest_k=3)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-9), key
    assert 0.2 < ours["precision"] < 0.95 and 0.2 < ours["coverage"] < 0.95  # not a trivial all-or-nothing case


def test_prdc_separates_fidelity_from_diversity():
    torch.manual_seed(3)
    real = torch.randn(1000, 4)
    same = metrics.prdc(real, torch.randn(1000, 4))
    narrow = metrics.prdc(real, 0.3 * torch.randn(1000, 4))  # faithful but not diverse
    wide = metrics.prdc(real, 3.0 * torch.randn(1000, 4))  # diverse but unfaithful
    assert same["precision"] > 0.8 and same["recall"] > 0.8 and 0.8 < same["density"] < 1.2
    assert narrow["precision"] > 0.95 and narrow["recall"] < 0.5 and narrow["coverage"] < same["coverage"]
    assert wide["precision"] < 0.4 and wide["recall"] > 0.8
