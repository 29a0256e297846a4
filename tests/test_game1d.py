"""The 1-D game: gauss1d data, uniform z, the optimal discriminator, -log 4, and the figure end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import TINY, compose_train, run_cli
from PIL import Image
from torch import nn

from ganrun import data
from ganrun.data import game1d
from ganrun.models import mlp
from ganrun.models.common import noise
from ganrun.training.losses import Minimax, NonSaturating
from ganrun.training.objectives import Adversarial
from ganrun.training.run import run


def test_gauss1d_density_integrates_to_one_and_matches_samples():
    mix = data.gauss1d((-2.0, 2.0), 0.5)
    assert mix.shape == (1,) and not mix.pixels
    x = torch.linspace(-6, 6, 4001).view(-1, 1)
    assert float(mix.density(x).sum() * 12 / 4000) == pytest.approx(1.0, abs=1e-4)
    # by hand: at x = 2 the far component adds ~0, so p = 0.5 / (0.5 sqrt(2 pi))
    assert float(mix.density(torch.tensor([[2.0]]))) == pytest.approx(0.5 / (0.5 * math.sqrt(2 * math.pi)), rel=1e-6)
    s = mix.sample(20000, torch.Generator().manual_seed(0))
    assert float(s.abs().mean()) == pytest.approx(2.0, abs=0.02) and float((s > 0).float().mean()) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(data.DataError, match="at least one mean"):
        data.gauss1d((), 0.5)


def test_uniform_latent_stays_in_its_box_and_the_gaussian_does_not():
    G_u, _ = mlp.make((1,), latent_dim=3, hidden=(4,), latent="uniform")
    G_n, _ = mlp.make((1,), latent_dim=3, hidden=(4,))
    z_u, z_n = noise(G_u, 5000), noise(G_n, 5000)
    assert z_u.shape == (5000, 3) and float(z_u.abs().max()) <= 1.0 and float(z_u.std()) == pytest.approx(1 / math.sqrt(3), abs=0.02)
    assert float(z_n.abs().max()) > 2.5
    with pytest.raises(ValueError, match="model.latent=cauchy"):
        mlp.make((1,), latent="cauchy")


def test_kde_of_normal_samples_approximates_the_normal_density():
    samples = torch.randn(20000, generator=torch.Generator().manual_seed(1))
    x = torch.linspace(-3, 3, 61)
    truth = torch.exp(-x.double() ** 2 / 2) / math.sqrt(2 * math.pi)
    assert float((game1d.kde(samples, x) - truth).abs().max()) < 0.02


def test_optimal_d_and_jsd_by_hand():
    p = torch.tensor([0.3, 0.0, 0.1, 0.0])
    q = torch.tensor([0.1, 0.2, 0.1, 0.0])
    torch.testing.assert_close(game1d.optimal_d(p, q), torch.tensor([0.75, 0.0, 0.5, 0.5]))
    # identical densities: JSD 0; disjoint ones: log 2
    assert game1d.jensen_shannon(q, q, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert game1d.jensen_shannon(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 1.0) == pytest.approx(math.log(2))


def test_value_at_the_optimum_is_minus_log_4():
    """p_g = p_data gives D* = 1/2 (logit 0): V = log(1/2) + log(1/2) = -log 4, for every formulation
    whose D side is -V."""
    zero = torch.zeros(1000)
    for loss in (NonSaturating(), Minimax()):
        assert -float(loss.d_loss(zero, zero)) == pytest.approx(-math.log(4), abs=1e-6)


class Affine(nn.Module):
    """A fixed G: x = mean + std * z with z ~ N(0, 1), so p_g is known in closed form."""

    latent_dim = 1

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.mean, self.std = nn.Parameter(torch.tensor(mean)), nn.Parameter(torch.tensor(std))

    def forward(self, z):
        return self.mean + self.std * z

    def density(self, x):
        mean, std = self.mean.item(), self.std.item()
        return torch.exp(-0.5 * ((x.double() - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def _train_d(G: Affine, mix: data.Mixture, steps: int = 1000):
    """D trained by ganrun's own step with G frozen (its learning rate 0)."""
    torch.manual_seed(0)
    _, D = mlp.make((1,), hidden=(64, 64))
    loss = NonSaturating()
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_G = torch.optim.SGD(G.parameters(), lr=0.0)
    batches = mix.batches(1024, torch.device("cpu"), seed=0)
    for _ in range(steps):
        Adversarial(loss).step(G, D, opt_G, opt_D, batches, want_stats=False)
    return D, loss


@pytest.mark.parametrize("g_mean, g_std", [(1.0, 0.75), (2.0, 0.5)])
def test_a_converged_d_approaches_the_optimal_d_and_its_value(g_mean, g_std):
    """With G fixed, D -> p_data / (p_data + p_g) (within 0.06 wherever the densities are not
    negligible, 0.03 on average) and V(D, G) -> -log 4 + 2 JSD(p_data, p_g) (within 0.02);
    with p_g = p_data that is D = 1/2 and V = -log 4."""
    mix = data.gauss1d((2.0,), 0.5)
    G = Affine(g_mean, g_std)
    D, loss = _train_d(G, mix)
    assert G.mean.item() == g_mean and G.std.item() == g_std  # G really stayed fixed
    x = torch.linspace(-2, 6, 801)
    p_data, p_g = mix.density(x.view(-1, 1)), G.density(x)
    with torch.no_grad():
        d = torch.sigmoid(D(x.view(-1, 1))).double()
    where = (p_data + p_g) > 0.05 * float((p_data + p_g).max())
    err = (d - game1d.optimal_d(p_data, p_g))[where].abs()
    assert float(err.max()) < 0.06 and float(err.mean()) < 0.03
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        real, fake = mix.sample(200_000, gen), G(torch.randn(200_000, 1, generator=gen))
        value = -float(loss.d_loss(D(real), D(fake)))
    expected = -math.log(4) + 2 * game1d.jensen_shannon(p_data, p_g, float(x[1] - x[0]))
    assert value == pytest.approx(expected, abs=0.02)
    if g_mean == 2.0:
        assert value == pytest.approx(-math.log(4), abs=0.01)


def test_the_figure_at_sample_steps_and_from_ganrun_sample(tmp_path):
    run_dir = tmp_path / "r"
    summary = run(compose_train("experiment=gauss1d", *TINY, "model.hidden=[8,8]"), run_dir)
    assert set(summary["metrics"]) == {"modes", "hq_percent", "reverse_kl", "energy"}  # the toy protocol, on one mode
    figure = Image.open(run_dir / "samples" / "step_000004.png")
    assert figure.size == (480, 336)  # the 1-D game's 6 x 4.2 in figure, not the 400 px scatter plot
    r = run_cli("sample", f"ckpt={run_dir}", f"out={tmp_path / 'game.png'}", "n=100")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "game.png").size == figure.size
    assert np.asarray(Image.open(tmp_path / "game.png")).std() > 10  # something is drawn
    r = run_cli("sample", f"ckpt={run_dir}", f"out={tmp_path / 'x.npy'}", "n=100", "truncation=1.0")
    assert r.returncode == 2 and "uniform" in r.stderr
    r = run_cli("sample", f"ckpt={run_dir}", f"out={tmp_path / 'x.npy'}", "n=100")
    x = np.load(tmp_path / "x.npy")
    assert r.returncode == 0 and x.shape == (100, 1)


def test_curves_show_d_star_shape_for_a_critic():
    """A critic's output is rescaled into [0, 1] for the plot; a probability D's is its sigmoid."""
    mix = data.gauss1d()
    G, D = mlp.make((1,), latent_dim=1, hidden=(8,), latent="uniform")
    c = game1d.curves(G, D, mix, probability=False, n=500)
    assert c["d"].min() == pytest.approx(0.0) and c["d"].max() == pytest.approx(1.0)
    assert len(c["x"]) == game1d.GRID and c["z"].min() >= -1 and c["z"].max() <= 1
    p = game1d.curves(G, D, mix, probability=True, n=500)
    with torch.no_grad():
        expected = torch.sigmoid(D(torch.from_numpy(p["x"]).view(-1, 1))).numpy()
    np.testing.assert_allclose(p["d"], expected, rtol=1e-5)
