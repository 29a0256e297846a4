"""Discriminator rejection sampling: exact with an exact density-ratio D, its limits, and every entry point."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import TINY, TINY_MODEL, compose_train, run_cli
from torch import nn

from ganrun.artifacts import checkpoint
from ganrun.config import ConfigError, validate
from ganrun.data import grid
from ganrun.metrics import rejection
from ganrun.metrics import scores as metrics
from ganrun.models.common import Packed
from ganrun.training.losses import NonSaturating, Wasserstein
from ganrun.training.run import run


class Identity(nn.Module):
    """G(z) = z: proposals from the standard normal in 2-D."""

    latent_dim, latent, n_classes, pseudo_classes = 2, "gaussian", 0, False

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, z):
        return z + self.anchor


class LogRatio(nn.Module):
    """The optimal D of a sigmoid GAN: logit = log p_data(x) - log p_g(x), from two density functions."""

    def __init__(self, log_data, log_model):
        super().__init__()
        self.log_data, self.log_model = log_data, log_model

    def forward(self, x):
        return (self.log_data(x) - self.log_model(x))[:, None]


def normal_log_density(mean, std):
    return lambda x: (-0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))).sum(1)


def test_an_exact_ratio_turns_the_proposal_into_the_data_distribution():
    # proposals N(0, I), data N((1, -0.5), 0.5^2 I): the ratio is bounded, so the rejection sampler is exact
    D = LogRatio(normal_log_density(torch.tensor([1.0, -0.5]), 0.5), normal_log_density(torch.zeros(2), 1.0))
    x, info = rejection.sample(Identity(), D, 20000, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 2) and info["filled"] == 0
    assert torch.allclose(x.mean(0), torch.tensor([1.0, -0.5]), atol=0.02)
    assert torch.allclose(x.std(0), torch.tensor([0.5, 0.5]), atol=0.02)
    # the acceptance rate of exact rejection sampling is 1 / M with M = max p_data / p_g = 4 e^(5/6) here
    # (give or take sampling noise; the running bound starts a little below the true maximum)
    assert 0.95 / (4 * math.exp(5 / 6)) < info["accept_rate"] < 1.2 / (4 * math.exp(5 / 6))


def test_a_packed_D_keeps_whole_packs_and_samples_the_data_distribution():
    # PacGAN: D sees (N/2, 4) pairs and its optimal logit is the sum of the two samples' log ratios;
    # keeping a pair with probability exp(logit - M) makes both members draws from p_data, at 1 / M^2
    per_sample = LogRatio(normal_log_density(torch.tensor([1.0, -0.5]), 0.5), normal_log_density(torch.zeros(2), 1.0))

    class PairRatio(nn.Module):
        def forward(self, pairs):
            return per_sample(pairs[:, :2]) + per_sample(pairs[:, 2:])

    x, info = rejection.sample(Identity(), Packed(PairRatio(), 2), 20000, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 2) and info["filled"] == 0
    assert torch.allclose(x.mean(0), torch.tensor([1.0, -0.5]), atol=0.02)
    assert torch.allclose(x.std(0), torch.tensor([0.5, 0.5]), atol=0.02)
    m2 = (4 * math.exp(5 / 6)) ** 2  # the bound of the pair's ratio: about 84 pairs proposed per pair kept
    assert 0.9 / m2 < info["accept_rate"] < 1.2 / m2


def test_it_mends_an_unbalanced_generator_with_bridges():
    data = grid(side=3, spacing=2.0, sigma=0.05)
    centers = data.centers
    weights = torch.tensor([4.0, 1, 1, 1, 1, 1, 1, 1, 0.2])  # one mode 4x too full, one nearly empty

    class Lopsided(nn.Module):
        """Mixture of the 9 modes with unequal weights, plus 20% of its mass on a wide blob between them."""

        latent_dim, latent, n_classes, pseudo_classes = 3, "gaussian", 0, False

        def __init__(self):
            super().__init__()
            self.anchor = nn.Parameter(torch.zeros(()))

        def forward(self, z):
            u = torch.special.ndtr(z[:, 2])  # uniform in (0, 1): picks the mode or the blob
            k = torch.searchsorted((weights / weights.sum()).cumsum(0), (u / 0.8).clamp(max=0.999999))
            on_mode = centers[k] + 0.05 * z[:, :2]
            return torch.where((u < 0.8)[:, None], on_mode, 2.0 * z[:, :2]) + self.anchor

    def log_model(x):
        mix = torch.logsumexp(torch.stack([math.log(0.8 * w / weights.sum()) + normal_log_density(c, 0.05)(x)
                                           for c, w in zip(centers, weights)]), 0)
        return torch.logaddexp(mix, math.log(0.2) + normal_log_density(torch.zeros(2), 2.0)(x))

    def log_data(x):
        return torch.logsumexp(torch.stack([normal_log_density(c, 0.05)(x) for c in centers]), 0) - math.log(9)

    G = Lopsided()
    raw = metrics.toy_metrics(G(torch.randn(2500, 3, generator=torch.Generator().manual_seed(1))), centers, 0.05)
    kept, _ = rejection.sample(G, LogRatio(log_data, log_model), 2500, torch.Generator().manual_seed(1))
    fixed = metrics.toy_metrics(kept, centers, 0.05)
    assert raw["hq_percent"] < 85 and raw["reverse_kl"] > 0.2
    assert fixed["modes"] == 9 and fixed["hq_percent"] > 98.5 and fixed["reverse_kl"] < 0.02


def test_the_budget_caps_the_bound_and_keeps_the_rarest_proposals():
    # D wants only x_0 > 3 (0.13% of proposals): the exact sampler would need ~750 proposals per sample;
    # with a budget of 200, M drops until 1 in 200 is kept, and every x_0 > 3 is kept
    D = LogRatio(lambda x: torch.where(x[:, 0] > 3, 50.0, 0.0), lambda x: torch.zeros(len(x)))
    x, info = rejection.sample(Identity(), D, 2000, torch.Generator().manual_seed(0), budget=200)
    assert info["filled"] == 0 and 0.0045 < info["accept_rate"] < 0.0055
    share = float((x[:, 0] > 3).float().mean())  # 0.00135 of proposals, kept with probability 1, of 0.005 kept
    assert 0.2 < share < 0.33
    assert rejection.bound_cap(torch.tensor([0.0, 0.0, 0.0, 5.0]), 4) == 5.0  # rate 0.255 >= 1/4: exact
    assert abs(rejection.bound_cap(torch.tensor([0.0, 0.0, 0.0, 50.0]), 2) - math.log(3)) < 1e-6  # 1/4 + 3/4 e^-M = 1/2


def test_a_D_that_turns_after_the_first_pool_falls_back_to_its_best_proposals(caplog):
    class Turning(nn.Module):
        """Logit 0 on the first pool (one chunk), then -50 + x_0: nothing passes the test any more."""

        calls = 0

        def forward(self, x):
            self.calls += 1
            return (torch.zeros(len(x)) if self.calls == 1 else x[:, 0] - 50)[:, None]

    x, info = rejection.sample(Identity(), Turning(), 100, torch.Generator().manual_seed(0), budget=2)
    assert x.shape == (100, 2) and info["filled"] == 100 and info["accept_rate"] == 0
    assert (x[:, 0] > 2).all()  # the 100 best of 10,000 by D: the largest x_0
    assert "the proposals D rated most real" in caplog.text


@pytest.mark.parametrize("loss, model, message", [
    (Wasserstein(), {"pack": 1}, "needs a sigmoid GAN loss"),
    (NonSaturating(), {"_target_": "ganrun.models.vae.make"}, "model=vae has an encoder"),
])
def test_drs_refuses_a_D_whose_logit_is_not_a_log_ratio(loss, model, message):
    with pytest.raises(ConfigError, match=message):
        rejection.check(loss, model)


def test_train_drs_is_checked_before_any_work():
    for fine in ([], ["model.pack=2"], ["model.minibatch_std=true"]):  # gan, packed or not
        validate(compose_train("dataset=ring", "model=mlp", "train.drs=true", *fine))
    for extra in (["loss=wgan-gp"], ["loss=hinge"], ["model=vae", "dataset=mnist-sample"]):
        with pytest.raises(ConfigError, match="train.drs"):
            validate(compose_train("dataset=ring", "model=mlp", "train.drs=true", *extra))


def test_drs_in_training_eval_and_sample(tmp_path):
    run_dir = tmp_path / "r"
    summary = run(compose_train("dataset=ring", "model=mlp", *TINY, *TINY_MODEL["mlp"], "train.drs=true"), run_dir)
    m = summary["metrics"]
    assert {"modes", "drs_modes", "drs_hq_percent", "drs_reverse_kl", "drs_accept_rate"} <= set(m)
    assert 0 < m["drs_accept_rate"] <= 1 and "drs" in summary["metric_settings"]
    # `ganrun eval` follows the run's train.drs unless told otherwise
    r = run_cli("eval", f"ckpt={run_dir}", f"out={tmp_path / 'e.json'}")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "e.json").read_text())["metrics"]["drs_modes"] == m["drs_modes"]
    r = run_cli("eval", f"ckpt={run_dir}", "drs=false", f"out={tmp_path / 'plain.json'}")
    assert "drs_modes" not in json.loads((tmp_path / "plain.json").read_text())["metrics"]
    # `ganrun sample`: the filtered samples by default for this run, G's own with drs=false
    from ganrun.commands.sample import generate

    ckpt = checkpoint.load(run_dir)
    own, _, _ = generate(ckpt, 50, 0, torch.device("cpu"))
    kept, _, _ = generate(ckpt, 50, 0, torch.device("cpu"), drs=True)
    assert kept.shape == own.shape and not torch.equal(kept, own)
    r = run_cli("sample", f"ckpt={run_dir}", "n=50", f"out={tmp_path / 's.npy'}")
    assert r.returncode == 0 and "kept by D's rejection test" in r.stdout
    import numpy as np

    assert np.allclose(np.load(tmp_path / "s.npy"), kept.numpy())
    r = run_cli("sample", f"ckpt={run_dir}", "mode=interp", "drs=true", f"out={tmp_path / 'i.png'}")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "drs=true" in r.stderr


def test_drs_on_a_wgan_checkpoint_is_one_line(tmp_path):
    run(compose_train("dataset=ring", "model=mlp", "loss=wgan-gp", *TINY, *TINY_MODEL["mlp"]), tmp_path / "w")
    for command in ("sample", "eval"):
        r = run_cli(command, f"ckpt={tmp_path / 'w'}", "drs=true", f"out={tmp_path / 'x.json'}"
                    if command == "eval" else f"out={tmp_path / 'x.png'}")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "sigmoid GAN loss" in r.stderr


def test_drs_on_an_image_model_behind_diffaugment(tmp_path):
    # D is saved inside the DiffAugment wrapper; DRS scores clean images with the bare D
    summary = run(compose_train(*TINY, *TINY_MODEL["dcgan"], "train.augment=[translation]", "train.drs=true"),
                  tmp_path / "img")
    assert {"drs_classes", "drs_fd", "drs_accept_rate"} <= set(summary["metrics"])
    from ganrun.commands.sample import generate

    kept, _, _ = generate(checkpoint.load(tmp_path / "img"), 16, 0, torch.device("cpu"), drs=True)
    assert kept.shape == (16, 1, 28, 28) and kept.abs().max() <= 1


def test_drs_with_packing_and_minibatch_std_end_to_end(tmp_path):
    run_dir = tmp_path / "packed"
    summary = run(compose_train("dataset=ring", "model=mlp", *TINY, *TINY_MODEL["mlp"], "model.pack=2",
                                "model.minibatch_std=true", "train.drs=true"), run_dir)
    m = summary["metrics"]
    assert {"drs_modes", "drs_hq_percent", "drs_accept_rate"} <= set(m) and 0 < m["drs_accept_rate"] <= 1
    from ganrun.commands.sample import generate

    kept, _, _ = generate(checkpoint.load(run_dir), 51, 0, torch.device("cpu"), drs=True)  # odd n: packs cut to n
    assert kept.shape == (51, 2)
