"""Metrics on constructed data with known answers."""

import math

import pytest
import torch

from ganrun import data, metrics


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
    # predicted histogram (3, 1, 0) of 4 against uniform over 3
    assert m["class_kl"] == pytest.approx(0.75 * math.log(0.75 * 3) + 0.25 * math.log(0.25 * 3))
