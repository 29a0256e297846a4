"""The training fast path: mixed precision, torch.compile (and its fallback), fused Adam."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from conftest import TINY, TINY_MODEL, compose_train

from ganrun import config
from ganrun.artifacts import checkpoint
from ganrun.config import ConfigError
from ganrun.training import losses
from ganrun.training import regularizers as R
from ganrun.models.build import build_models
from ganrun.training.objectives import Adversarial
from ganrun.training.precision import Precision, native_bf16_cpu, settle_precision
from ganrun.training.build import build
from ganrun.training.run import run

# (loss, regularizers): every loss, and the penalties that take a double backward
LOSSES = [(losses.NonSaturating(), []), (losses.Minimax(), []), (losses.Hinge(), []), (losses.LeastSquares(), []),
          (losses.Wasserstein(), [R.WeightClip(0.01)]), (losses.Wasserstein(), [R.GradientPenalty()]),
          (losses.NonSaturating(), [R.R1(1.0)])]


def one_step(loss: tuple[losses.Loss, list], precision: Precision, G0, D0) -> tuple[dict, dict]:
    """One training step from fixed weights, batch and noise; returns (step output, G's new weights)."""
    G, D = copy.deepcopy(G0), copy.deepcopy(D0)
    opt_G = torch.optim.SGD(G.parameters(), lr=0.1)
    opt_D = torch.optim.SGD(D.parameters(), lr=0.1)
    real = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(0)
    out = Adversarial(*loss).step(G, D, opt_G, opt_D, iter([real] * 5), want_stats=True, precision=precision)
    return out, {k: v.clone() for k, v in G.state_dict().items()}


@pytest.mark.parametrize("loss", LOSSES, ids=lambda l: type(l[0]).__name__ + "".join("+" + type(r).__name__ for r in l[1]))
def test_bf16_step_matches_fp32(loss):
    torch.manual_seed(0)
    G0, D0 = build_models(compose_train("model.width=8", "model.latent_dim=8").model, (1, 28, 28))
    ref, g_ref = one_step(loss, Precision("32"), G0, D0)
    half, g_half = one_step(loss, Precision("bf16", "cpu"), G0, D0)
    for k in ("loss/D", "loss/G", "loss/penalty"):
        assert half[k].dtype == torch.float32  # losses are taken on float32 logits
        assert half[k].item() == pytest.approx(ref[k].item(), rel=0.05, abs=0.02), k
    moved = sum((g_ref[k] - G0.state_dict()[k]).abs().sum() for k in g_ref if g_ref[k].is_floating_point())
    diff = sum((g_ref[k] - g_half[k]).abs().sum() for k in g_ref if g_ref[k].is_floating_point())
    assert moved > 0 and diff < 0.3 * moved  # bf16 moves G the way fp32 does, within its 8-bit mantissa


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_penalties_run_in_float32_under_autocast_and_losses_match(mode):
    precision = Precision(mode, "cpu")
    with precision.autocast():
        assert torch.is_autocast_enabled("cpu")
    with precision.autocast(penalty=True):
        assert not torch.is_autocast_enabled("cpu")
    torch.manual_seed(0)
    G0, D0 = build_models(compose_train("model.width=8", "model.latent_dim=8").model, (1, 28, 28))
    wgan_gp = (losses.Wasserstein(), [R.GradientPenalty()])
    ref, _ = one_step(wgan_gp, Precision("32"), G0, D0)
    half, _ = one_step(wgan_gp, precision, G0, D0)
    assert half["loss/penalty"].item() == pytest.approx(ref["loss/penalty"].item(), rel=0.05)
    assert half["loss/D"].item() == pytest.approx(ref["loss/D"].item(), rel=0.05, abs=0.02)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_run_trains_and_resumes(tmp_path, precision):
    overrides = [*TINY, *TINY_MODEL["dcgan"], f"train.precision={precision}", "train.steps=4", "train.ckpt_every=2"]
    run(compose_train(*overrides), tmp_path)
    ckpt = checkpoint.load(tmp_path)
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())
    assert set(ckpt["grad_scalers"]) == ({"D", "G"} if precision == "fp16" else set())
    summary = run(compose_train(*overrides, "train.steps=6", f"resume={tmp_path}"), tmp_path)
    assert summary["resumed_from"] == 4 and summary["step"] == 6


def cpuinfo(path, flags: str) -> str:
    path.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: fpu sse2 avx2 {flags}\n\n")
    return str(path)


def test_precision_auto_is_bf16_only_for_images_on_a_cpu_that_computes_it(tmp_path, caplog):
    native, plain = cpuinfo(tmp_path / "native", "avx512f avx512_bf16"), cpuinfo(tmp_path / "plain", "avx512f")
    assert native_bf16_cpu(native) == "avx512_bf16" and native_bf16_cpu(plain) == ""
    assert native_bf16_cpu(str(tmp_path / "none")) == ""  # not Linux: no file, no guess
    with caplog.at_level(logging.INFO, logger="ganrun"):
        assert settle_precision("auto", "cpu", True, native) == "bf16"
    assert "train.precision=auto: this CPU computes bfloat16 in hardware (avx512_bf16)" in caplog.text
    with caplog.at_level(logging.INFO, logger="ganrun"):
        assert settle_precision("auto", "cpu", True, plain) == "32"  # emulated bfloat16 is slower than float32
    assert "train.precision=auto: float32 (this CPU has no bfloat16 in hardware)" in caplog.text
    assert settle_precision("auto", "cpu", False, native) == "32"  # the 2-D point sets' MLPs
    assert settle_precision("auto", "cuda", True, native) == "32"
    assert [settle_precision(m, "cpu", True, plain) for m in ("32", "bf16", "fp16")] == ["32", "bf16", "fp16"]


@pytest.mark.parametrize("flag", ["avx512_bf16", ""])
def test_a_run_computes_in_what_precision_auto_settles_to(tmp_path, monkeypatch, flag):
    import ganrun.training.precision as P
    monkeypatch.setattr(P, "native_bf16_cpu", lambda cpuinfo="": flag)
    overrides = [*TINY, *TINY_MODEL["dcgan"], "train.steps=2", "train.precision=auto"]
    assert build(compose_train(*overrides)).precision.mode == ("bf16" if flag else "32")
    assert build(compose_train(*overrides, "train.precision=32")).precision.mode == "32"
    assert build(compose_train(*overrides[:-1])).precision.mode == "32"  # the default
    assert run(compose_train(*overrides), tmp_path)["status"] == "completed"


def test_unknown_precision_is_one_line():
    with pytest.raises(ConfigError, match="train.precision='fp8': use auto, 32, bf16, fp16"):
        config.validate(compose_train("train.precision=fp8", *TINY))


def test_compile_failure_falls_back_to_the_same_eager_run(tmp_path, monkeypatch, caplog):
    overrides = [*TINY, "dataset=ring", "model=mlp", "model.hidden=[16]"]
    run(compose_train(*overrides), tmp_path / "eager")

    def broken(module, *args, **kwargs):
        class Failing(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = module

            def __getattr__(self, name):
                return getattr(self._modules["inner"], name) if name != "inner" else super().__getattr__(name)

            def forward(self, *a):
                raise RuntimeError("no C compiler here\nlong traceback")
        return Failing()

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING):
        run(compose_train(*overrides, "train.compile=true"), tmp_path / "fallback")
    assert "train.compile: torch.compile failed (no C compiler here); training without it" in caplog.text
    a, b = (checkpoint.load(tmp_path / r) for r in ("eager", "fallback"))
    for k in a["G"]:
        assert torch.equal(a["G"][k], b["G"][k]), k  # states were put back before the eager step


@pytest.mark.slow
def test_compile_trains_and_checkpoints_plain_weights(tmp_path):
    run(compose_train(*TINY, "dataset=ring", "model=mlp", "model.hidden=[16]", "train.compile=true"), tmp_path)
    ckpt = checkpoint.load(tmp_path)
    assert not any("_orig_mod" in k for k in ckpt["G"])


def test_fused_adam_option_reaches_the_optimizer(tmp_path):
    from ganrun.training.build import build

    cfg = compose_train(*TINY, "dataset=ring", "model=mlp", "model.hidden=[16]", "optimizer.fused=true")
    exp = build(cfg)
    assert exp.opt_G.defaults["fused"] is True
    assert run(cfg, tmp_path)["status"] == "completed"
