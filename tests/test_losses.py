"""Every loss against values computed by hand on hand-picked logits."""

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganrun.training import losses

LN3 = math.log(3.0)
# sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4
REAL = torch.tensor([0.0, LN3])
FAKE = torch.tensor([0.0, -LN3])


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_nonsaturating_d_loss_is_minus_value_function():
    # -[mean(log 1/2, log 3/4) + mean(log(1 - 1/2), log(1 - 1/4))] = -(log 1/2 + log 3/4) = log(8/3)
    assert_close(losses.NonSaturating().d_loss(REAL, FAKE), t(math.log(8 / 3)))


def test_nonsaturating_g_loss_maximises_log_d_of_fake():
    # -mean(log 1/2, log 1/4) = 1.5 log 2
    assert_close(losses.NonSaturating().g_loss(FAKE), t(1.5 * math.log(2)))


def test_minimax_g_loss_is_log_one_minus_d_of_fake():
    # mean(log(1 - 1/2), log(1 - 1/4)) = (log 1/2 + log 3/4) / 2
    assert_close(losses.Minimax().g_loss(FAKE), t((math.log(0.5) + math.log(0.75)) / 2))
    assert_close(losses.Minimax().d_loss(REAL, FAKE), t(math.log(8 / 3)))


def test_minimax_saturates_where_nonsaturating_does_not():
    # with D sure the sample is fake (logit -10), d g_loss / d logit is about -sigmoid(-10) for minimax
    # but about -1 for the non-saturating loss: the reason the latter is used in practice
    grads = {}
    for cls in (losses.Minimax, losses.NonSaturating):
        logit = torch.tensor([-10.0], requires_grad=True)
        cls().g_loss(logit).backward()
        grads[cls] = logit.grad.item()
    assert abs(grads[losses.Minimax]) == pytest.approx(1 / (1 + math.exp(10)), rel=1e-4)
    assert grads[losses.NonSaturating] == pytest.approx(-1 / (1 + math.exp(-10)), rel=1e-4)


def test_value_function_optimum_is_minus_log_4():
    # D(x) = 1/2 everywhere (p_g = p_data): V = log 1/2 + log 1/2 = -log 4, so d_loss = log 4
    zeros = torch.zeros(5)
    assert_close(losses.NonSaturating().d_loss(zeros, zeros), t(math.log(4)))


def test_one_sided_label_smoothing():
    loss = losses.NonSaturating(real_label=0.9)
    # real term: -mean(0.9 log s(r) + 0.1 log(1 - s(r))) with s(r) in {1/2, 3/4}; fake targets stay 0
    real = -(0.9 * (math.log(0.5) + math.log(0.75)) + 0.1 * (math.log(0.5) + math.log(0.25))) / 2
    fake = -(math.log(0.5) + math.log(0.75)) / 2
    assert_close(loss.d_loss(REAL, FAKE), t(real + fake))


def test_label_flips_follow_the_random_draws():
    loss = losses.NonSaturating(flip_prob=0.3)
    real, fake = torch.randn(1000), torch.randn(1000)
    torch.manual_seed(7)
    got = loss.d_loss(real, fake)
    torch.manual_seed(7)  # replay the draws: first the real targets' flips, then the fake ones'
    flip_r, flip_f = torch.rand(1000) < 0.3, torch.rand(1000) < 0.3
    assert 200 < int(flip_r.sum()) < 400
    expect = (nn.functional.binary_cross_entropy_with_logits(real, (~flip_r).float())
              + nn.functional.binary_cross_entropy_with_logits(fake, flip_f.float()))
    assert_close(got, expect)


@pytest.mark.parametrize("kwargs", [{"real_label": 0.0}, {"real_label": 1.5}, {"flip_prob": 0.5}, {"flip_prob": -0.1}])
def test_bad_label_options_are_refused(kwargs):
    with pytest.raises(ValueError, match="loss."):
        losses.NonSaturating(**kwargs)


def test_probability_stats_are_sigmoid_means():
    stats = losses.NonSaturating().stats(REAL, FAKE)
    assert_close(stats["D(x)"], t((0.5 + 0.75) / 2))
    assert_close(stats["D(G(z))"], t((0.5 + 0.25) / 2))


def test_wasserstein_losses_and_estimate():
    real, fake = t([1.0, 3.0]), t([-1.0, 0.5])
    loss = losses.Wasserstein()
    assert_close(loss.d_loss(real, fake), t(-0.25 - 2.0))
    assert_close(loss.g_loss(fake), t(0.25))
    stats = loss.stats(real, fake)
    assert_close(stats["critic/wasserstein"], t(2.25))
    assert_close(stats["critic/real"], t(2.0))


def test_hinge():
    real, fake = t([0.5, 2.0]), t([-2.0, 0.5])
    # mean(relu(1 - r)) = mean(0.5, 0) = 0.25; mean(relu(1 + f)) = mean(0, 1.5) = 0.75
    assert_close(losses.Hinge().d_loss(real, fake), t(1.0))
    assert_close(losses.Hinge().g_loss(fake), t(0.75))


def test_least_squares():
    real, fake = t([1.0, 0.0]), t([0.0, 1.0])
    # 1/2 [mean((1-1)^2, (0-1)^2) + mean(0^2, 1^2)] = 1/2 (1/2 + 1/2)
    assert_close(losses.LeastSquares().d_loss(real, fake), t(0.5))
    assert_close(losses.LeastSquares().g_loss(fake), t(0.25))
    # smoothing moves the real target b to 0.9: 1/2 [mean(0.01, 0.81) + 1/2]
    assert_close(losses.LeastSquares(real_label=0.9).d_loss(real, fake), t(0.5 * (0.41 + 0.5)))


def test_relativistic_pairing_by_hand():
    real, fake = t([2.0, 0.0]), t([1.0, 1.0])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731  softplus
    # D: mean softplus(fake_i - real_i) = (sp(-1) + sp(1)) / 2; G: mean softplus(real_i - fake_i), the same here
    loss = losses.RelativisticPairing()
    assert_close(loss.d_loss(real, fake), t((sp(-1.0) + sp(1.0)) / 2))
    assert_close(loss.g_loss(fake, real), t((sp(1.0) + sp(-1.0)) / 2))
    assert_close(loss.g_loss(t([0.0, 3.0]), real), t((sp(2.0) + sp(-3.0)) / 2))
    # equal logits: log 2 each way (neither side can tell a pair apart)
    assert_close(loss.d_loss(real, real), t(math.log(2.0)))
    with pytest.raises(ValueError, match="pass real_logits"):
        loss.g_loss(fake)


def test_rpgan_trains_through_the_loop(tmp_path):
    from conftest import TINY, TINY_MODEL, compose_train

    from ganrun.training.run import run

    summary = run(compose_train("loss=rpgan", *TINY, *TINY_MODEL["dcgan"]), tmp_path / "r")
    assert summary["status"] == "completed" and summary["losses"]["loss/penalty"] > 0
