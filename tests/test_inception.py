"""Inception FID / KID, the numbers papers report, run through their whole path on stand-in weights: the FID
Inception-v3 architecture with random (variance-keeping) weights saved as a local file, so no network is
needed. Bad weights files and corrupt feature caches are refused or rebuilt, never trusted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from test_own_images import upright_images

from ganrun import data
from ganrun.metrics import classifier
from ganrun.metrics.evaluator import Evaluator

pytest.importorskip("torchmetrics")
fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """A weights file of the FID Inception-v3's shape: built without the download, He-initialised so that
    features differ between images (the default init shrinks every activation towards zero)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fidelity, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(torch.nn.Module, "load_state_dict", lambda self, *a, **k: None)
        torch.manual_seed(0)
        net = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight)
    path = tmp_path_factory.mktemp("inception") / "stand-in.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.slow  # Inception-v3 at 299 px on 72 images: a minute or two on the CPU
def test_inception_scores_are_zero_for_a_set_against_itself_and_grow_with_the_difference(stand_in):
    from ganrun.metrics.scores import inception_scores

    g = torch.Generator().manual_seed(0)
    real, like, dark = (torch.rand(12, 3, 16, 16, generator=g) for _ in range(3))
    dark = dark * 0.3
    same = inception_scores(real, real, str(stand_in))
    close = inception_scores(like, real, str(stand_in))
    far = inception_scores(dark, real, str(stand_in))
    assert abs(same["inception_fid"]) < 1e-3 and abs(same["inception_kid"]) < 1e-3
    assert far["inception_fid"] > 10 * close["inception_fid"] > 0
    assert far["inception_kid"] > close["inception_kid"]
    grey = inception_scores(real[:, :1], real[:, :1], str(stand_in))  # one channel: repeated to three
    assert abs(grey["inception_fid"]) < 1e-3


@pytest.mark.slow  # trains the rotation network and runs Inception-v3 at 299 px on the CPU
def test_eval_adds_inception_scores_against_the_held_out_reference(tmp_path, stand_in):
    root = upright_images(tmp_path / "set", n=40, size=8)
    np.save(tmp_path / "s.npy", np.random.default_rng(1).random((20, 3, 8, 8)).astype(np.float32))
    r = run_cli("eval", f"samples={tmp_path / 's.npy'}", "dataset=folder", f"dataset.root={root}",
                "dataset.image_size=8", "dataset.workers=0", f"inception_weights={stand_in}",
                f"out={tmp_path / 'e.json'}")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["metrics"]["inception_fid"] > 0 and "inception_kid" in report["metrics"]
    assert report["settings"]["inception_reference"] == "8 held-out images"
    assert "inception_fid" in r.stdout


@pytest.mark.parametrize("content", [None, b"not weights"])
def test_a_missing_or_wrong_inception_weights_file_is_refused_before_any_work(tmp_path, content):
    weights = tmp_path / "w.pth"
    if content is not None:
        weights.write_bytes(content)
    r = run_cli("eval", "samples=nothing.npy", "dataset=mnist-sample", f"inception_weights={weights}")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    expected = "no such file" if content is None else "not Inception-v3 FID weights"
    assert f"inception_weights={weights}: {expected}" in r.stderr


@pytest.mark.parametrize("damage", ["truncated", "altered"])
def test_a_corrupt_feature_cache_is_rebuilt_not_trusted(tmp_path, damage, caplog):
    root = upright_images(tmp_path / "set", n=40, size=8, seed=len(damage))  # a set (and cache file) of its own
    before = set(classifier.cache_dir().glob("*.pt"))
    first = Evaluator(data.ImageFolder(str(root), image_size=8, workers=0), n_images=16).settings["feature_space"]
    (cached,) = set(classifier.cache_dir().glob("*.pt")) - before
    if damage == "truncated":
        cached.write_bytes(cached.read_bytes()[:100])
    else:  # weights changed behind the recorded digest
        ckpt = torch.load(cached, weights_only=True)
        ckpt["weights"] = {k: v + 1 if v.is_floating_point() else v for k, v in ckpt["weights"].items()}
        torch.save(ckpt, cached)
    with caplog.at_level("WARNING"):
        again = Evaluator(data.ImageFolder(str(root), image_size=8, workers=0), n_images=16)
    assert "unreadable or altered: training it again" in caplog.text
    assert again.settings["feature_space"] == first  # the same network, trained again
    assert classifier.read_cached(cached) is not None  # and the cache holds good weights again
