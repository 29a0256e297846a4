"""`ganrun sample`: interpolation strips and GIFs, truncation, EMA choice, PNG folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_MODEL, compose_train, run_cli
from PIL import Image

from ganrun import errors
from ganrun.artifacts import checkpoint
from ganrun.commands.sample import generate, latents, main, slerp
from ganrun.training.run import run


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ema") / "r"
    run(compose_train(*TINY, *TINY_MODEL["dcgan"], "train.ema=0.5", "model.conditional=false", "train.clusters=0"), run_dir)
    return run_dir


def test_slerp_by_hand():
    z0, z1 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    path = slerp(z0, z1, torch.tensor([0.0, 0.5, 1.0]))[0]
    assert torch.allclose(path[0], z0[0]) and torch.allclose(path[2], z1[0])
    # halfway along a right angle: sin(pi/4)/sin(pi/2) of each end
    assert torch.allclose(path[1], torch.tensor([2 ** -0.5, 2 ** 0.5]), atol=1e-6)
    same = slerp(z0, z0 * 3, torch.tensor([0.5]))[0, 0]  # parallel: a straight line
    assert torch.allclose(same, torch.tensor([2.0, 0.0]))


def test_truncation_bounds_every_entry_and_keeps_the_rest():
    z = latents(500, 16, seed=0, truncation=0.5)
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    full = latents(500, 16, seed=0)
    keep = full.abs() <= 0.5
    assert torch.equal(z[keep], full[keep])  # only the entries beyond the bound are redrawn


def test_interp_strip_gif_and_folder(ema_run, tmp_path):
    assert main([f"ckpt={ema_run}", "mode=interp", "n=3", "frames=5", f"out={tmp_path / 'strip.png'}"]) == 0
    assert Image.open(tmp_path / "strip.png").size == (5 * 30 + 2, 3 * 30 + 2)  # 3 rows of 5 frames
    assert main([f"ckpt={ema_run}", "mode=interp", "n=2", "frames=4", f"out={tmp_path / 'walk.gif'}"]) == 0
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 4 + 2  # there (4) and back (2 in between)
    assert main([f"ckpt={ema_run}", "n=3", f"out={tmp_path / 'pngs'}/"]) == 0
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert Image.open(tmp_path / "pngs" / "000000.png").size == (28, 28)


def test_interp_rows_start_and_end_at_their_anchors(ema_run, tmp_path):
    assert main([f"ckpt={ema_run}", "mode=interp", "n=2", "frames=3", "seed=5", f"out={tmp_path / 'i.npy'}"]) == 0
    strip = np.load(tmp_path / "i.npy").reshape(2, 3, 1, 28, 28)
    assert not np.allclose(strip[:, 0], strip[:, -1])  # each row moves


def test_ema_switch_and_determinism(ema_run):
    ckpt = checkpoint.load(ema_run)
    device = torch.device("cpu")
    with_ema, _, _ = generate(ckpt, 4, 0, device)
    assert torch.equal(with_ema, generate(ckpt, 4, 0, device, ema=True)[0])  # the default is the EMA G
    raw, _, _ = generate(ckpt, 4, 0, device, ema=False)
    assert not torch.allclose(with_ema, raw)
    assert torch.equal(raw, generate(ckpt, 4, 0, device, ema=False)[0])  # same seed, same samples
    truncated, _, _ = generate(ckpt, 4, 0, device, truncation=0.5)
    assert not torch.allclose(truncated, with_ema)


@pytest.mark.parametrize("args, message", [
    (["mode=walk"], "mode='walk': use sample or interp"),
    (["out=x.gif"], "a GIF animates an interpolation; add mode=interp"),
    (["mode=interp", "frames=1"], "frames=1: must be >= 2"),
    (["truncation=-1"], "truncation=-1.0: must be > 0"),
    (["out=x.jpg"], "unsupported suffix"),
])
def test_bad_sample_options_are_one_line(ema_run, capsys, args, message):
    assert errors.run("sample", main, [f"ckpt={ema_run}", *args]) == 2  # the path the CLI takes
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_ema_true_without_an_ema_generator(tmp_path):
    run(compose_train(*TINY, *TINY_MODEL["dcgan"], "train.ema=0"), tmp_path / "plain")
    r = run_cli("sample", f"ckpt={tmp_path / 'plain'}", "ema=true", f"out={tmp_path / 'x.png'}")
    assert r.returncode == 2 and "ema=true: this checkpoint has no EMA generator" in r.stderr


def test_conditional_interp_keeps_one_class_per_row(tmp_path):
    run(compose_train(*TINY, *TINY_MODEL["dcgan"], "model.conditional=true"), tmp_path / "cond")
    from ganrun.commands.sample import interpolate

    ckpt = checkpoint.load(tmp_path / "cond")
    strips = interpolate(ckpt, 3, 4, 0, torch.device("cpu"), classes=[3, 7])
    assert strips.shape == (3, 4, 1, 28, 28)
    # the same seed gives the same end points; rows take the classes in turn (3, 7, 3)
    threes = interpolate(ckpt, 3, 4, 0, torch.device("cpu"), classes=[3])
    assert torch.equal(strips[0], threes[0]) and torch.equal(strips[2], threes[2])
    assert not torch.allclose(strips[1], threes[1])  # row 1 is class 7 in one, class 3 in the other


def test_a_sample_set_draws_the_classes_in_the_training_sets_mix(tmp_path):
    """`ganrun sample out=X.npy` of a conditional G asks for each class as often as the training set holds
    it (as the run's own metrics do), so `ganrun eval samples=X.npy` scores the same mix."""
    from ganrun.commands.sample import sample_labels

    assert sample_labels(2, 8, None, every=True, counts=[30, 10])[0].tolist() == [0] * 6 + [1] * 2
    assert sample_labels(2, 8, None, every=True)[0].tolist() == [0] * 4 + [1] * 4  # an old checkpoint: equal
    root = tmp_path / "set"
    g = np.random.default_rng(0)
    for name, count, level in (("a", 30, 40), ("b", 10, 210)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray((level + g.integers(0, 30, (28, 28, 3))).astype(np.uint8)).save(root / name / f"{i}.png")
    # class b has under two held-out images: its intra-class FD is NaN, where it used to stop the run
    summary = run(compose_train(*TINY, *TINY_MODEL["dcgan"], "dataset=folder", f"dataset.root={root}",
                                "dataset.image_size=28"), tmp_path / "r")
    assert "fd" in summary["metrics"] and summary["per_class"]["fd"][1] != summary["per_class"]["fd"][1]
    assert checkpoint.load(tmp_path / "r")["data"]["class_counts"] == [30, 10]
    r = run_cli("sample", f"ckpt={tmp_path / 'r'}", "n=20", f"out={tmp_path / 's.npy'}")
    assert r.returncode == 0, r.stderr
    assert np.bincount(np.load(tmp_path / "s.labels.npy")).tolist() == [15, 5]
    r = run_cli("sample", f"ckpt={tmp_path / 'r'}", "n=20", "drs=true", f"out={tmp_path / 'd.npy'}")
    assert r.returncode == 0, r.stderr  # the samples D kept, each with the class it was drawn in
    assert len(np.load(tmp_path / "d.npy")) == 20 and set(np.load(tmp_path / "d.labels.npy").tolist()) <= {0, 1}
    run(compose_train(*TINY, *TINY_MODEL["dcgan"], "dataset=folder", f"dataset.root={root}", "dataset.image_size=28",
                      "model.conditional=false", "train.clusters=0"), tmp_path / "u")
    r = run_cli("sample", f"ckpt={tmp_path / 'u'}", "n=20", f"out={tmp_path / 'u.npy'}")
    assert r.returncode == 0, r.stderr  # a G that takes no class: no labels for `ganrun eval` to score it by
    assert (tmp_path / "u.npy").exists() and not (tmp_path / "u.labels.npy").exists()
