"""Every loss against values computed by hand on hand-picked logits."""

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganrun import losses
from ganrun.regularizers import total_penalty

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


def test_weight_clipping_bounds_every_critic_weight():
    D = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in D.parameters():
            p.normal_(0, 1)
    constrain(losses.Wasserstein(clip=0.01), D)
    for p in D.parameters():
        assert p.abs().max() <= 0.01
    assert any((p.abs() == 0.01).any() for p in D.parameters())  # clamped, not zeroed


def test_no_clipping_when_clip_is_zero():
    D = nn.Linear(3, 1)
    with torch.no_grad():
        D.weight.fill_(5.0)
    constrain(losses.Wasserstein(clip=0.0), D)
    assert (D.weight == 5.0).all()


def penalty(loss, D, real, fake):
    """The D penalty a loss's config turns on (its regularizers, summed in order)."""
    return total_penalty(loss.components()[0], D, real, fake)


def constrain(loss, D):
    """The constraints a loss's config turns on, applied as after a D step."""
    for reg in loss.components()[0]:
        reg.after_step(D)


class Linear(nn.Module):
    """C(x) = w . x: its input gradient is w everywhere, so ||grad|| = ||w|| exactly."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return x.flatten(1) @ self.w


class Spy(Linear):
    """A linear critic that records the inputs it is shown."""

    def __init__(self, w):
        super().__init__(w)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach())
        return super().forward(x)


@pytest.mark.parametrize("w, expect", [([2.0, 0.0], 10.0), ([0.6, 0.8], 0.0), ([3.0, 4.0], 160.0)])
def test_gradient_penalty_on_known_gradient_norm(w, expect):
    # gp = 10 * (||w|| - 1)^2 whatever the interpolates are: ||w|| = 2 -> 10, 1 -> 0, 5 -> 160
    D = Linear(w)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    assert_close(penalty(losses.WassersteinGP(), D, real, fake), t(expect))


def test_gradient_penalty_is_differentiable_in_the_critic_weights():
    # d/dw 10 (||w|| - 1)^2 = 20 (||w|| - 1) w / ||w||; at w = (2, 0): (20, 0)
    D = Linear([2.0, 0.0])
    penalty(losses.WassersteinGP(), D, torch.randn(8, 2), torch.randn(8, 2)).backward()
    assert_close(D.w.grad, t([20.0, 0.0]))


def test_gradient_penalty_uses_interpolates_between_real_and_fake():
    real, fake = torch.zeros(64, 2), torch.ones(64, 2)
    D = Spy([1.0, 0.0])
    penalty(losses.WassersteinGP(gp_weight=1.0), D, real, fake)
    x_hat = D.seen[0]
    assert (x_hat[:, 0] == x_hat[:, 1]).all()  # one eps per sample, on the segment real -> fake
    assert 0 <= x_hat.min() and x_hat.max() <= 1 and x_hat.std() > 0.1


def test_wgan_gp_has_no_clipping():
    assert losses.WassersteinGP().clip == 0.0


def test_other_losses_have_zero_penalty():
    for loss in (losses.NonSaturating(), losses.Minimax(), losses.Wasserstein(), losses.Hinge(), losses.LeastSquares()):
        assert_close(penalty(loss, nn.Linear(2, 1), torch.randn(4, 2), torch.randn(4, 2)), t(0.0))


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


def test_r1_penalty_on_known_gradient():
    # gamma / 2 * ||w||^2 = 2 / 2 * 25 for w = (3, 4), on any real batch
    loss = losses.NonSaturating(r1_gamma=2.0)
    assert_close(penalty(loss, Linear([3.0, 4.0]), torch.randn(8, 2), torch.randn(8, 2)), t(25.0))


@pytest.mark.parametrize("w, expect", [([0.6, 0.8], 0.0), ([2.0, 0.0], 10.0)])
def test_dragan_penalty_on_known_gradient(w, expect):
    loss = losses.Hinge(dragan_weight=10.0)
    assert_close(penalty(loss, Linear(w), torch.randn(8, 2), torch.randn(8, 2)), t(expect))


def test_r1_and_dragan_add_up_and_reach_d():
    loss = losses.LeastSquares(r1_gamma=1.0, dragan_weight=10.0)
    D = Linear([2.0, 0.0])
    value = penalty(loss, D, torch.randn(8, 2), torch.randn(8, 2))
    assert_close(value, t(0.5 * 4 + 10.0))
    value.backward()
    # d/dw [1/2 ||w||^2 + 10 (||w|| - 1)^2] at w = (2, 0): w + 20 (||w|| - 1) w / ||w|| = (2 + 20, 0)
    assert_close(D.w.grad, t([22.0, 0.0]))


def test_r1_only_looks_at_real_data():
    real, fake = torch.zeros(4, 2), torch.ones(4, 2)
    D = Spy([1.0, 0.0])
    penalty(losses.NonSaturating(r1_gamma=1.0), D, real, fake)
    assert len(D.seen) == 1 and torch.equal(D.seen[0], real)


def test_unrolled_critic_gradient_by_hand():
    # D(x) = w x, one fake a, one real r, non-saturating loss, one unrolled step of rate eta:
    #   w1 = w - eta * dL_D/dw,  dL_D/dw = -r s(-w r) + a s(w a)   (s = sigmoid)
    #   L_G = softplus(-w1 a);  dL_G/da = -s(-w1 a) * (w1 + a dw1/da),  dw1/da = -eta (s(wa) + a w s'(wa))
    from ganrun.updates import unrolled_critic

    w, r, a0, eta = 0.7, 1.5, -0.4, 0.3
    D = torch.nn.Linear(1, 1, bias=False).double()
    D.weight.data.fill_(w)
    a = torch.tensor([[a0]], dtype=torch.float64, requires_grad=True)
    real = torch.tensor([[r]], dtype=torch.float64)
    loss = losses.NonSaturating(unroll_steps=1)
    critic = unrolled_critic(D, loss, real, a, (), eta, 1)
    g_loss = loss.g_loss(critic(a).view(-1))
    (grad,) = torch.autograd.grad(g_loss, a)
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    w1 = w - eta * (-r * s(-w * r) + a0 * s(w * a0))
    dw1 = -eta * (s(w * a0) + a0 * w * s(w * a0) * (1 - s(w * a0)))
    expected = -s(-w1 * a0) * (w1 + a0 * dw1)
    assert grad.item() == pytest.approx(expected, rel=1e-6)  # the loop takes losses on float32 logits
    assert g_loss.item() == pytest.approx(math.log1p(math.exp(-w1 * a0)), rel=1e-6)
    assert D.weight.item() == w and D.weight.grad is None  # D itself is untouched


def test_unroll_steps_must_not_be_negative():
    with pytest.raises(ValueError, match="loss.unroll_steps=-1: must be >= 0"):
        losses.Hinge(unroll_steps=-1)


def test_top_k_keeps_the_fakes_d_rates_most_real():
    update = losses.NonSaturating(top_k=0.5).components()[1]
    logits = torch.tensor([3.0, -1.0, 2.0, 0.0, 1.0])
    torch.testing.assert_close(update.select(logits), logits)  # keep starts at 1: every fake
    update.at_step(51, 100)  # mid-training: the share has fallen to top_k
    assert update.keep == pytest.approx(0.5)
    torch.testing.assert_close(update.select(logits), torch.tensor([3.0, 2.0, 1.0]))  # ceil(2.5) = 3 best
    update.keep = 0.01
    torch.testing.assert_close(update.select(logits), torch.tensor([3.0]))  # never fewer than one
    with pytest.raises(ValueError, match="loss.top_k=0"):
        losses.Hinge(top_k=0.0)


def test_top_k_share_falls_to_nu_by_mid_training():
    from ganrun.updates import top_k_share

    assert top_k_share(0.5, 1, 100) == 1.0
    assert top_k_share(0.5, 26, 100) == pytest.approx(0.75)
    assert top_k_share(0.5, 51, 100) == pytest.approx(0.5) and top_k_share(0.5, 100, 100) == 0.5


def test_top_k_trains_through_the_loop(tmp_path):
    from conftest import TINY, compose_train
    from ganrun.train import run

    cfg = compose_train("dataset=ring", "model=mlp", "model.hidden=[8,8]", *TINY, "loss.top_k=0.5")
    summary = run(cfg, tmp_path / "r")
    assert summary["status"] == "completed"


def test_r2_penalty_looks_at_the_fakes_only():
    # gamma / 2 * ||w||^2 = 4 / 2 * 25 for w = (3, 4), measured on the fakes
    real, fake = torch.zeros(4, 2), torch.ones(4, 2)
    D = Spy([3.0, 4.0])
    assert_close(penalty(losses.NonSaturating(r2_gamma=4.0), D, real, fake), t(50.0))
    assert len(D.seen) == 1 and torch.equal(D.seen[0], fake)


def test_r1_and_r2_together_as_r3gan_uses_them():
    loss = losses.RelativisticPairing(r1_gamma=2.0, r2_gamma=2.0)
    regs = loss.components()[0]
    assert [type(r).__name__ for r in regs] == ["R1", "R2"]
    assert_close(penalty(loss, Linear([3.0, 4.0]), torch.randn(4, 2), torch.randn(4, 2)), t(50.0))


def test_lecam_by_hand_and_its_moving_anchors():
    from ganrun.regularizers import LeCam

    reg = losses.NonSaturating(lecam_weight=0.5).components()[0][0]
    assert isinstance(reg, LeCam)
    real, fake = t([1.0, 3.0]), t([-2.0, 0.0])
    # first step: anchors start at this batch's means, a_real = 2, a_fake = -1
    # relu(D(x) - a_fake)^2: 2^2, 4^2 -> mean 10; relu(a_real - D(G(z)))^2: 4^2, 2^2 -> mean 10; 0.5 * 20
    assert_close(reg.logit_penalty(real, fake), t(10.0))
    # next step: anchors move 1% towards the new means (0, 0): a_real = 1.98, a_fake = -0.99
    zero = t([0.0, 0.0])
    assert_close(reg.logit_penalty(zero, zero), t(0.5 * (0.99 ** 2 + 1.98 ** 2)))
    state = reg.state_dict()
    again = LeCam(0.5)
    again.load_state_dict(state)
    assert torch.allclose(again.anchors, t([1.98, -0.99]))
    # one-sided: a real output below a_fake and a fake output above a_real cost nothing
    assert again.logit_penalty(t([-5.0]), t([5.0])).item() == 0.0
    assert losses.NonSaturating().components()[0] == []  # off by default


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


def test_relativistic_pairing_refuses_top_k():
    with pytest.raises(ValueError, match="loss.top_k=0.5: top-k training drops fakes"):
        losses.RelativisticPairing(top_k=0.5)


def test_rpgan_trains_through_the_loop(tmp_path):
    from conftest import TINY, TINY_MODEL, compose_train
    from ganrun.train import run

    summary = run(compose_train("loss=rpgan", *TINY, *TINY_MODEL["dcgan"]), tmp_path / "r")
    assert summary["status"] == "completed" and summary["losses"]["loss/penalty"] > 0
