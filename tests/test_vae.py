"""model=vae: the ELBO by hand, the encoder/decoder shapes, the step, and every CLI path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY, compose_train, run_cli

from ganrun.models import vae
from ganrun.models.vae import ELBO
from ganrun.training.objectives import VAEObjective
from ganrun.training.run import run

TINY_VAE = ["model=vae", "model.width=4", "model.latent_dim=4", "model.hidden=[16,16]"]


def test_kl_by_hand():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # 1/2 [(1 + 1 - 1 - 0) + (0 + 2 - 1 - log 2)]
    torch.testing.assert_close(ELBO.kl(mu, logvar), torch.tensor([0.5 * (2 - math.log(2))]))
    assert float(ELBO.kl(torch.zeros(3, 5), torch.zeros(3, 5)).abs().max()) == 0.0  # q = prior


def test_reconstruction_nll_by_hand():
    x, x_hat = torch.zeros(1, 2), torch.tensor([[1.0, 2.0]])
    # sigma 1: (1 + 4) / 2 + 2/2 log(2 pi)
    torch.testing.assert_close(ELBO(recon_sigma=1.0).recon_nll(x, x_hat), torch.tensor([2.5 + math.log(2 * math.pi)]))
    # calibrated: sigma^2 = mean squared error = 2.5, so the sum term is D / 2 = 1
    torch.testing.assert_close(ELBO().recon_nll(x, x_hat), torch.tensor([1.0 + math.log(2 * math.pi * 2.5)]))
    terms = ELBO(beta=0.5, recon_sigma=1.0)(x, x_hat, torch.ones(1, 2), torch.zeros(1, 2))
    torch.testing.assert_close(terms["loss"], terms["recon"] + 0.5 * terms["kl"])
    torch.testing.assert_close(terms["kl"], torch.tensor(1.0))
    with pytest.raises(ValueError, match="model.beta=-1"):
        ELBO(beta=-1)


@pytest.mark.parametrize("shape, arch", [((1, 28, 28), "conv"), ((3, 32, 32), "conv"), ((1, 28, 28), "mlp"),
                                         ((2,), "conv")])
def test_encoder_and_decoder_shapes(shape, arch):
    decoder, encoder = vae.make(shape, arch=arch, latent_dim=6, width=8, hidden=(16, 16))
    x = torch.randn(5, *shape)
    with torch.no_grad():
        mu, logvar = encoder(x)
        out = decoder(mu)
    assert mu.shape == logvar.shape == (5, 6) and decoder.latent_dim == 6
    assert out.shape == (5, *shape)
    if len(shape) == 3:
        assert float(out.abs().max()) <= 1.0  # tanh images


def test_bad_vae_options_are_value_errors():
    with pytest.raises(ValueError, match="unconditional"):
        vae.make((1, 28, 28), conditional=True, n_classes=10)
    with pytest.raises(ValueError, match="model.arch=resnet"):
        vae.make((1, 28, 28), arch="resnet")


def test_vae_step_trains_both_networks_on_the_elbo():
    torch.manual_seed(0)
    decoder, encoder = vae.make((2,), latent_dim=2, hidden=(32, 32), recon_sigma=0.1)
    opt_G = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    opt_D = torch.optim.Adam(encoder.parameters(), lr=1e-2)
    data = torch.randn(64, 2) * torch.tensor([2.0, 0.5]) + 1.0

    def batches():
        while True:
            yield data

    source = batches()
    before = [p.detach().clone() for p in (*decoder.parameters(), *encoder.parameters())]
    first = VAEObjective(encoder.elbo).step(decoder, encoder, opt_G, opt_D, source, want_stats=True)
    assert {"loss/G", "vae/recon", "vae/kl", "grad_norm/G", "grad_norm/D", "health/diversity"} <= set(first)
    torch.testing.assert_close(first["loss/G"], first["vae/recon"] + first["vae/kl"])
    after = list((*decoder.parameters(), *encoder.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # both networks moved
    for _ in range(150):
        last = VAEObjective(encoder.elbo).step(decoder, encoder, opt_G, opt_D, source, want_stats=False)
    assert float(last["loss/G"]) < 0.5 * float(first["loss/G"])


def test_train_sample_eval_on_a_vae(tmp_path):
    """The same commands as a GAN: train writes samples and checkpoints, sample and eval read them."""
    run_dir = tmp_path / "r"
    summary = run(compose_train(*TINY, *TINY_VAE), run_dir)
    assert set(summary["losses"]) == {"loss/G"} and {"vae/recon", "vae/kl"} <= set(summary["stats"])
    assert {"classes", "fd", "kid"} <= set(summary["metrics"])
    assert (run_dir / "samples" / "step_000004.png").is_file()
    r = run_cli("sample", f"ckpt={run_dir}", "n=5", f"out={tmp_path / 's.npy'}")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "s.npy").shape == (5, 1, 28, 28)
    r = run_cli("eval", f"ckpt={run_dir}", "n=100", f"out={tmp_path / 'scores.json'}")
    assert r.returncode == 0, r.stderr
    assert "fd" in json.loads((tmp_path / "scores.json").read_text())["metrics"]


@pytest.mark.slow  # 8 s; the VAE alone is tested in make test
def test_a_sweep_puts_a_gan_and_a_vae_side_by_side(tmp_path):
    """`ganrun train -m model=dcgan,vae` on one loss recipe: wgan-gp's model.d_norm=layer suits both."""
    r = run_cli("train", "-m", "model=dcgan,vae", "loss=wgan-gp", *TINY, "model.width=4", "model.latent_dim=4",
                f"hydra.sweep.dir={tmp_path}", "train.n_critic=1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    table = r.stdout[r.stdout.index("sweep "):].splitlines()
    rows = [line for line in table if "model=" in line]
    assert len(rows) == 2 and "model=dcgan" in rows[0] and "model=vae" in rows[1]
    assert all("completed" in row for row in rows) and "fd" in table[1]  # both scored by the same metrics
