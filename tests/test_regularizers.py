"""Every regularizer against values computed by hand, on D's side (penalties, constraints) and on G's
(mode seeking, unrolling, top-k); picked in config as a list and run through the objective."""

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from conftest import TINY, TINY_MODEL, compose_train
from ganrun.config import ConfigError
from ganrun.training import losses
from ganrun.training import regularizers as R
from ganrun.training.objectives import Adversarial


def t(x):
    return torch.tensor(x, dtype=torch.float32)


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


# ---------------------------------------------------------------- D's side


def test_weight_clipping_bounds_every_critic_weight():
    D = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in D.parameters():
            p.normal_(0, 1)
    R.WeightClip(0.01).after_step(D)
    for p in D.parameters():
        assert p.abs().max() <= 0.01
    assert any((p.abs() == 0.01).any() for p in D.parameters())  # clamped, not zeroed
    with pytest.raises(ValueError, match="regularizers.clip.bound=0"):
        R.WeightClip(0.0)


@pytest.mark.parametrize("w, expect", [([2.0, 0.0], 10.0), ([0.6, 0.8], 0.0), ([3.0, 4.0], 160.0)])
def test_gradient_penalty_on_known_gradient_norm(w, expect):
    # gp = 10 * (||w|| - 1)^2 whatever the interpolates are: ||w|| = 2 -> 10, 1 -> 0, 5 -> 160
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    assert_close(R.GradientPenalty().penalty(Linear(w), real, fake), t(expect))


def test_gradient_penalty_is_differentiable_in_the_critic_weights():
    # d/dw 10 (||w|| - 1)^2 = 20 (||w|| - 1) w / ||w||; at w = (2, 0): (20, 0)
    D = Linear([2.0, 0.0])
    R.GradientPenalty().penalty(D, torch.randn(8, 2), torch.randn(8, 2)).backward()
    assert_close(D.w.grad, t([20.0, 0.0]))


def test_gradient_penalty_uses_interpolates_between_real_and_fake():
    real, fake = torch.zeros(64, 2), torch.ones(64, 2)
    D = Spy([1.0, 0.0])
    R.GradientPenalty(1.0).penalty(D, real, fake)
    x_hat = D.seen[0]
    assert (x_hat[:, 0] == x_hat[:, 1]).all()  # one eps per sample, on the segment real -> fake
    assert 0 <= x_hat.min() and x_hat.max() <= 1 and x_hat.std() > 0.1


def test_r1_penalty_on_known_gradient_and_real_data_only():
    # gamma / 2 * ||w||^2 = 2 / 2 * 25 for w = (3, 4), on any real batch
    real, fake = torch.zeros(4, 2), torch.ones(4, 2)
    D = Spy([3.0, 4.0])
    assert_close(R.R1(2.0).penalty(D, real, fake), t(25.0))
    assert len(D.seen) == 1 and torch.equal(D.seen[0], real)


def test_r2_penalty_looks_at_the_fakes_only():
    # gamma / 2 * ||w||^2 = 4 / 2 * 25 for w = (3, 4), measured on the fakes
    real, fake = torch.zeros(4, 2), torch.ones(4, 2)
    D = Spy([3.0, 4.0])
    assert_close(R.R2(4.0).penalty(D, real, fake), t(50.0))
    assert len(D.seen) == 1 and torch.equal(D.seen[0], fake)


@pytest.mark.parametrize("w, expect", [([0.6, 0.8], 0.0), ([2.0, 0.0], 10.0)])
def test_dragan_penalty_on_known_gradient(w, expect):
    assert_close(R.DRAGAN(10.0).penalty(Linear(w), torch.randn(8, 2), torch.randn(8, 2)), t(expect))


def test_a_list_of_penalties_adds_up_and_reaches_d():
    D = Linear([2.0, 0.0])
    value = R.total_penalty([R.R1(1.0), R.DRAGAN(10.0)], D, torch.randn(8, 2), torch.randn(8, 2))
    assert_close(value, t(0.5 * 4 + 10.0))
    value.backward()
    # d/dw [1/2 ||w||^2 + 10 (||w|| - 1)^2] at w = (2, 0): w + 20 (||w|| - 1) w / ||w|| = (2 + 20, 0)
    assert_close(D.w.grad, t([22.0, 0.0]))
    assert_close(R.total_penalty([], D, torch.randn(4, 2), torch.randn(4, 2)), t(0.0))  # none: zero


def test_lecam_by_hand_and_its_moving_anchors():
    reg = R.LeCam(0.5)
    real, fake = t([1.0, 3.0]), t([-2.0, 0.0])
    # first step: anchors start at this batch's means, a_real = 2, a_fake = -1
    # relu(D(x) - a_fake)^2: 2^2, 4^2 -> mean 10; relu(a_real - D(G(z)))^2: 4^2, 2^2 -> mean 10; 0.5 * 20
    assert_close(reg.logit_penalty(real, fake), t(10.0))
    # next step: anchors move 1% towards the new means (0, 0): a_real = 1.98, a_fake = -0.99
    zero = t([0.0, 0.0])
    assert_close(reg.logit_penalty(zero, zero), t(0.5 * (0.99 ** 2 + 1.98 ** 2)))
    again = R.LeCam(0.5)
    again.load_state_dict(reg.state_dict())
    assert torch.allclose(again.anchors, t([1.98, -0.99]))
    # one-sided: a real output below a_fake and a fake output above a_real cost nothing
    assert again.logit_penalty(t([-5.0]), t([5.0])).item() == 0.0


# ---------------------------------------------------------------- G's side


def test_unrolled_critic_gradient_by_hand():
    # D(x) = w x, one fake a, one real r, non-saturating loss, one unrolled step of rate eta:
    #   w1 = w - eta * dL_D/dw,  dL_D/dw = -r s(-w r) + a s(w a)   (s = sigmoid)
    #   L_G = softplus(-w1 a);  dL_G/da = -s(-w1 a) * (w1 + a dw1/da),  dw1/da = -eta (s(wa) + a w s'(wa))
    w, r, a0, eta = 0.7, 1.5, -0.4, 0.3
    D = torch.nn.Linear(1, 1, bias=False).double()
    D.weight.data.fill_(w)
    a = torch.tensor([[a0]], dtype=torch.float64, requires_grad=True)
    real = torch.tensor([[r]], dtype=torch.float64)
    loss = losses.NonSaturating()
    critic = R.Unrolled(1).critic(D, D, loss, real, a, (), eta)
    g_loss = loss.g_loss(critic(a).view(-1))
    (grad,) = torch.autograd.grad(g_loss, a)
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    w1 = w - eta * (-r * s(-w * r) + a0 * s(w * a0))
    dw1 = -eta * (s(w * a0) + a0 * w * s(w * a0) * (1 - s(w * a0)))
    expected = -s(-w1 * a0) * (w1 + a0 * dw1)
    assert grad.item() == pytest.approx(expected, rel=1e-6)  # the loop takes losses on float32 logits
    assert g_loss.item() == pytest.approx(math.log1p(math.exp(-w1 * a0)), rel=1e-6)
    assert D.weight.item() == w and D.weight.grad is None  # D itself is untouched
    with pytest.raises(ValueError, match="regularizers.unroll.steps=0: must be >= 1"):
        R.Unrolled(0)


def test_top_k_keeps_the_fakes_d_rates_most_real():
    reg = R.TopK(0.5)
    logits = torch.tensor([3.0, -1.0, 2.0, 0.0, 1.0])
    assert_close(reg.select(logits), logits)  # keep starts at 1: every fake
    reg.at_step(51, 100)  # mid-training: the share has fallen to 0.5
    assert reg.keep == pytest.approx(0.5)
    assert_close(reg.select(logits), torch.tensor([3.0, 2.0, 1.0]))  # ceil(2.5) = 3 best
    reg.keep = 0.01
    assert_close(reg.select(logits), torch.tensor([3.0]))  # never fewer than one
    with pytest.raises(ValueError, match="regularizers.topk.share=0"):
        R.TopK(0.0)


def test_top_k_share_falls_to_nu_by_mid_training():
    assert R.top_k_share(0.5, 1, 100) == 1.0
    assert R.top_k_share(0.5, 26, 100) == pytest.approx(0.75)
    assert R.top_k_share(0.5, 51, 100) == pytest.approx(0.5) and R.top_k_share(0.5, 100, 100) == 0.5


def test_mode_seeking_by_hand():
    # halves z1 = [0, 0], z2 = [2, 2] -> mean |dz| = 2; x1 = [1, 1, 1], x2 = [1, 2, 5] -> mean |dx| = 5/3
    z = t([[0.0, 0.0], [2.0, 2.0]])
    fake = t([[1.0, 1.0, 1.0], [1.0, 2.0, 5.0]])
    assert_close(R.ModeSeeking(3.0, eps=0.0).g_penalty(z, fake), t(3.0 * 2.0 / (5.0 / 3.0)))
    collapsed = t([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])  # two latent points, one sample: a large term
    assert R.ModeSeeking(1.0).g_penalty(z, collapsed).item() == pytest.approx(2.0 / 1e-5)


def test_mode_seeking_until_a_step_then_off():
    z = t([[0.0, 0.0], [2.0, 2.0]])
    fake = t([[1.0, 1.0, 1.0], [1.0, 2.0, 5.0]])
    reg = R.ModeSeeking(3.0, eps=0.0, until=1000)
    reg.at_step(1000, 4500)
    assert_close(reg.g_penalty(z, fake), t(3.0 * 2.0 / (5.0 / 3.0)))  # up to and with step 1000
    reg.at_step(1001, 4500)
    assert reg.g_penalty(z, fake).item() == 0.0
    always = R.ModeSeeking(3.0, eps=0.0)  # until=0: every step
    always.at_step(10**6, 10**6)
    assert_close(always.g_penalty(z, fake), t(3.0 * 2.0 / (5.0 / 3.0)))
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="mode_seeking.until"):
            R.ModeSeeking(1.0, until=bad)


def test_mode_seeking_pairs_samples_of_one_class_for_a_conditional_g():
    # classes [0, 0, 1, 1]: the pairs are (0, 1) and (2, 3), not the halves (0, 2) and (1, 3)
    z = t([[0.0, 0.0], [2.0, 2.0], [0.0, 0.0], [4.0, 4.0]])  # |dz|: 2 and 4 -> 3
    fake = t([[1.0, 1.0, 1.0], [1.0, 2.0, 5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 3.0]])  # |dx|: 5/3 and 1 -> 4/3
    y = torch.tensor([0, 0, 1, 1])
    assert_close(R.ModeSeeking(2.0, eps=0.0).g_penalty(z, fake, y), t(2.0 * 3.0 / (4.0 / 3.0)))
    shuffled = torch.tensor([2, 0, 3, 1])  # the batch's order does not matter, only who shares a class
    assert_close(R.ModeSeeking(2.0, eps=0.0).g_penalty(z[shuffled], fake[shuffled], y[shuffled]),
                 t(2.0 * 3.0 / (4.0 / 3.0)))
    halves = R.ModeSeeking(2.0, eps=0.0).g_penalty(z, fake)  # what the halves would have given
    assert abs(halves.item() - 4.5) > 0.1
    # no two samples of one class in the batch: nothing to compare, no term
    assert R.ModeSeeking(1.0).g_penalty(z, fake, torch.tensor([0, 1, 2, 3])).item() == 0.0


def test_mode_seeking_pushes_g_apart():
    """A G-side term: a gradient step on it moves G's samples of two latent points apart."""
    torch.manual_seed(0)
    G = nn.Linear(2, 3)
    z = t([[0.0, 0.0], [1.0, 1.0]])
    before = float((G(z)[0] - G(z)[1]).abs().mean().detach())
    opt = torch.optim.SGD(G.parameters(), lr=0.01)
    R.ModeSeeking(1.0).g_penalty(z, G(z)).backward()
    opt.step()
    assert float((G(z)[0] - G(z)[1]).abs().mean().detach()) > before


# ---------------------------------------------------------------- both sides


def test_aux_classifier_by_hand():
    # cross-entropy of logits [2, 0] for class 0 and [0, 1] for class 1: mean(log(1 + e^-2), log(1 + e^-1))
    logits, y = t([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    expect = 3.0 * (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    for side in ("D", "G"):
        assert_close(R.AuxClassifier(3.0).class_penalty(logits, y, side), t(expect))
    assert R.Regularizer().class_penalty(logits, y, "D").item() == 0.0  # every other regularizer: no term
    with pytest.raises(ValueError, match="aux_classifier.weight=-1"):
        R.AuxClassifier(-1.0)


class Reading(R.Regularizer):
    """Records the class logits it is given on each side, and adds a fixed term there."""

    def __init__(self, d_term=0.0, g_term=0.0):
        self.terms, self.seen = {"D": d_term, "G": g_term}, []

    def class_penalty(self, class_logits, y, side):
        self.seen.append((side, class_logits.detach().clone(), y.clone()))
        return class_logits.new_tensor(self.terms[side])


def test_the_objective_gives_the_class_head_s_logits_on_the_real_batch_to_d_and_on_the_fakes_to_g():
    from ganrun.models import dcgan
    from ganrun.training.augment import Augmented

    def one_step(reading, seed=0):
        torch.manual_seed(seed)
        G, D = dcgan.make((3, 32, 32), width=4, latent_dim=8, conditional=True, n_classes=3, class_head=True)
        D = Augmented(D, ["translation"])  # the head is read through the wrapper
        x, y = torch.rand(8, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
        opt_G, opt_D = torch.optim.SGD(G.parameters(), lr=0.0), torch.optim.SGD(D.parameters(), lr=0.0)
        out = Adversarial(losses.NonSaturating(), [reading]).step(G, D, opt_G, opt_D, iter([(x, y)]), False)
        return out, y

    reading = Reading(d_term=2.5)
    out, y = one_step(reading)
    assert [side for side, _, _ in reading.seen] == ["D", "G"]
    for _, logits, labels in reading.seen:
        assert logits.shape == (8, 3) and torch.equal(labels, y)
    assert not torch.allclose(reading.seen[0][1], reading.seen[1][1])  # real images, then G's fakes
    assert_close(out["loss/penalty"], t(2.5))  # D's side: in D's loss, nothing else there
    plain_g = one_step(Reading())[0]["loss/G"]
    assert_close(one_step(Reading(g_term=7.0))[0]["loss/G"], plain_g + 7.0)  # G's side: in G's loss


def test_a_d_without_a_class_head_gives_no_class_term():
    from ganrun.models import dcgan

    torch.manual_seed(0)
    G, D = dcgan.make((3, 32, 32), width=4, latent_dim=8, conditional=True, n_classes=3)
    reading = Reading(d_term=2.5, g_term=7.0)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    out = Adversarial(losses.NonSaturating(), [reading]).step(
        G, D, torch.optim.SGD(G.parameters(), lr=0.0), torch.optim.SGD(D.parameters(), lr=0.0), iter([(x, y)]), False)
    assert reading.seen == [] and out["loss/penalty"].item() == 0.0


# ---------------------------------------------------------------- picked in config, run by the objective


@pytest.mark.parametrize("picked, classes", [
    (["regularizers=[r1]"], ["R1"]), (["loss=wgan-gp"], ["GradientPenalty"]), (["loss=wgan"], ["WeightClip"]),
    (["loss=rpgan"], ["R1", "R2"]), (["regularizers=[lecam,mode_seeking]"], ["LeCam", "ModeSeeking"]),
    (["loss=wgan-gp", "regularizers=[gp,r1]"], ["GradientPenalty", "R1"]), ([], []),
])
def test_regularizers_picked_in_config_build_in_order(picked, classes):
    from ganrun.training.build import build

    exp = build(compose_train(*TINY, *TINY_MODEL["dcgan"], *picked))
    assert [type(r).__name__ for r in exp.objective.regularizers] == classes


def test_the_losses_own_keys_point_to_the_regularizers():
    from ganrun import config

    with pytest.raises(ConfigError, match=r"loss.r1_gamma is not a ganrun key; use regularizers=\[r1\] "
                                          r"regularizers.r1.gamma=X"):
        config.compose(["loss.r1_gamma=1.0"])


def test_a_relativistic_loss_refuses_top_k():
    with pytest.raises(ConfigError, match="TopK drops fakes, which a paired"):
        Adversarial(losses.RelativisticPairing(), [R.TopK(0.5)])


@pytest.mark.parametrize("picked", [["regularizers=[r1,r2,dragan,lecam]"],
                                    ["regularizers=[unroll,topk,mode_seeking]", "regularizers.unroll.steps=1"]])
def test_every_regularizer_trains_through_the_loop(tmp_path, picked):
    from ganrun.training.run import run

    cfg = compose_train("dataset=ring", "model=mlp", "model.hidden=[8,8]", *TINY, *picked)
    summary = run(cfg, tmp_path / "r")
    assert summary["status"] == "completed"
