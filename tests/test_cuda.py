"""The GPU path: mixed precision, torch.compile, channels-last, the EMA, resume, pinned-memory loading.

Marked `cuda`: they run on the device named by GANRUN_TEST_DEVICE (`cuda` by default, where they skip
without a GPU). `bench/device.sh` runs them on a GPU; `bench/device.sh --smoke` runs the same tests on
the CPU (GANRUN_TEST_DEVICE=cpu), so the code behind them is known to work before a GPU is lent.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_MODEL, compose_train
from PIL import Image

from ganrun.artifacts import checkpoint
from ganrun.config.targets import instantiate
from ganrun.training.build import build
from ganrun.training.run import run

DEVICE = os.environ.get("GANRUN_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA GPU")]

ON_DEVICE = [*TINY, *TINY_MODEL["dcgan"], f"train.device={DEVICE}"]
# float32 on a GPU is not bit-reproducible (cuDNN picks kernels by timing); the CPU is
TOLERANCE = 0.0 if DEVICE == "cpu" else 1e-4


def weights(run_dir, net="G"):
    return {k: v for k, v in checkpoint.load(run_dir)[net].items() if v.is_floating_point()}


def assert_close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=0), (k, (a[k] - b[k]).abs().max().item())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_resumes_and_stays_finite(tmp_path, precision):
    overrides = [*ON_DEVICE, f"train.precision={precision}", "train.steps=4"]
    summary = run(compose_train(*overrides), tmp_path)
    assert summary["status"] == "completed" and summary["skipped_updates"] <= 1  # fp16's first scale may overflow
    assert all(torch.isfinite(v).all() for v in weights(tmp_path).values())
    ckpt = checkpoint.load(tmp_path)
    assert set(ckpt["grad_scalers"]) == ({"D", "G"} if precision == "fp16" else set())
    resumed = run(compose_train(*overrides, "train.steps=6", f"resume={tmp_path}"), tmp_path)
    assert resumed["resumed_from"] == 4 and resumed["step"] == 6
    assert np.isfinite(resumed["losses"]["loss/D"]) and np.isfinite(resumed["losses"]["loss/G"])


def test_compile_trains_and_checkpoints_plain_weights(tmp_path):
    summary = run(compose_train(*ON_DEVICE, "train.compile=true"), tmp_path)
    assert summary["status"] == "completed"
    assert not any("_orig_mod" in k for k in checkpoint.load(tmp_path)["G"])


def test_channels_last_is_the_layout_and_changes_no_result(tmp_path):
    last, first = (build(compose_train(*ON_DEVICE, f"train.channels_last={flag}")) for flag in ("true", "false"))
    conv = next(m for m in last.D.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not next(m for m in first.D.modules() if isinstance(m, torch.nn.Conv2d)).weight.is_contiguous(
        memory_format=torch.channels_last)
    # the same weights give the same outputs in either layout (up to the kernels' rounding: cuDNN picks other
    # algorithms for channels-last, and after training steps Adam magnifies such rounding, so compare a pass)
    last.G.load_state_dict(first.G.state_dict())
    last.D.load_state_dict(first.D.state_dict())
    torch.manual_seed(0)
    z = torch.randn(8, last.G.latent_dim, device=DEVICE)
    y = torch.arange(8, device=DEVICE) % max(last.G.n_classes, 1) if last.G.n_classes else None
    with torch.no_grad():
        outs = [(exp.G(z) if y is None else exp.G(z, y)) for exp in (last, first)]
        scores = [(exp.D(outs[1]) if y is None else exp.D(outs[1], y)) for exp in (last, first)]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-2, atol=1e-3)
    torch.testing.assert_close(scores[0], scores[1], rtol=1e-2, atol=1e-3)
    assert run(compose_train(*ON_DEVICE, "train.channels_last=true"), tmp_path)["status"] == "completed"


def test_ema_lives_on_the_device_and_averages_g(tmp_path):
    summary = run(compose_train(*ON_DEVICE, "train.ema=0.9", "train.ema_rampup=0"), tmp_path)
    assert summary["status"] == "completed"
    ckpt = checkpoint.load(tmp_path)
    G, ema = ckpt["G"], ckpt["G_ema"]
    floating = [k for k in G if G[k].is_floating_point() and "running" not in k]
    assert all(torch.isfinite(ema[k]).all() for k in floating)
    assert any(not torch.equal(G[k], ema[k]) for k in floating)  # an average, not a copy


def test_resume_on_the_device_continues_as_an_uninterrupted_run(tmp_path):
    straight = run(compose_train(*ON_DEVICE, "train.steps=6", "train.ckpt_every=0"), tmp_path / "straight")
    run(compose_train(*ON_DEVICE, "train.steps=3", "train.ckpt_every=0"), tmp_path / "cut")
    resumed = run(compose_train(*ON_DEVICE, "train.steps=6", f"resume={tmp_path / 'cut'}"), tmp_path / "cut")
    assert straight["step"] == resumed["step"] == 6
    for net in ("G", "D"):
        assert_close(weights(tmp_path / "straight", net), weights(tmp_path / "cut", net), atol=TOLERANCE)


def test_a_device_checkpoint_resumes_on_the_cpu(tmp_path):
    run(compose_train(*ON_DEVICE, "train.steps=3"), tmp_path)
    summary = run(compose_train(*TINY, *TINY_MODEL["dcgan"], "train.device=cpu", "train.steps=5",
                                f"resume={tmp_path}"), tmp_path)
    assert summary["resumed_from"] == 3 and summary["step"] == 5
    assert all(torch.isfinite(v).all() for v in weights(tmp_path).values())


def test_streamed_images_arrive_on_the_device_as_on_the_cpu(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    data = instantiate(compose_train("dataset=folder", f"dataset.root={tmp_path}", "dataset.image_size=16",
                                     "dataset.workers=1").dataset, "dataset")
    device = torch.device(DEVICE)
    on_device = next(iter(data.batches(8, device, seed=3)))  # pinned host memory and a non-blocking copy on CUDA
    on_cpu = next(iter(data.batches(8, torch.device("cpu"), seed=3)))
    assert on_device.device.type == device.type
    # the same images in the same order; scaled to [-1, 1] on the GPU, a value may differ in its last bit
    torch.testing.assert_close(on_device.cpu(), on_cpu, rtol=0, atol=1e-6)


def test_host_held_tensors_are_batched_as_the_device_held_ones():
    cfg = compose_train("dataset=mnist-sample")
    held = {}
    for on_device in (True, False):
        cfg.dataset.on_device = on_device
        data = instantiate(cfg.dataset, "dataset")
        held[on_device] = next(iter(data.batches(16, torch.device(DEVICE), seed=5, labels=True)))
    (x1, y1), (x2, y2) = held[True], held[False]
    assert x1.device.type == x2.device.type == torch.device(DEVICE).type
    assert torch.equal(x1.cpu(), x2.cpu()) and torch.equal(y1.cpu(), y2.cpu())
