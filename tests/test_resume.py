"""Never lose a run: exact resume, refusing an incompatible resume, SIGTERM/SIGINT, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY, TINY_MODEL, compose_train

from ganrun.artifacts import checkpoint
from ganrun.config import ConfigError
from ganrun.training.run import run

BASE = [*TINY, *TINY_MODEL["dcgan"], "train.steps=8", "train.ckpt_every=4", "model.d_dropout=0.2"]


@pytest.mark.parametrize("extra", [[], ["dataset=ring", "model=mlp", "model.hidden=[16,16]", "loss=wgan-gp"],
                                   ["dataset=ring", "model=mlp", "model.hidden=[16,16]", "regularizers=[lecam]"]])
def test_half_plus_resume_is_bit_identical_to_straight(tmp_path, extra):
    overrides = [*BASE, *extra] if not extra else [*TINY, *extra, "train.steps=8", "train.ckpt_every=4"]
    run(compose_train(*overrides), tmp_path / "straight")
    run(compose_train(*overrides, "train.steps=4"), tmp_path / "halves")
    summary = run(compose_train(*overrides, f"resume={tmp_path / 'halves'}"), tmp_path / "halves")
    assert summary["resumed_from"] == 4 and summary["step"] == 8
    a, b = (checkpoint.load(tmp_path / r) for r in ("straight", "halves"))
    for part in ("G", "D"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert torch.equal(a["opt_D"]["state"][0]["exp_avg"], b["opt_D"]["state"][0]["exp_avg"])
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_resume_mid_schedule_is_bit_identical(tmp_path):
    # the learning rate decays over train.steps; resuming a step checkpoint with the same steps
    # continues the same decay (the rates come from the step, not from the saved optimizer state)
    overrides = [*TINY, "dataset=ring", "model=mlp", "model.hidden=[16,16]", "train.lr_schedule=cosine",
                 "train.steps=8", "train.ckpt_every=4"]
    run(compose_train(*overrides), tmp_path / "straight")
    middle = tmp_path / "straight" / "checkpoints" / "step_000004.pt"
    assert run(compose_train(*overrides, f"resume={middle}"), tmp_path / "again")["resumed_from"] == 4
    a, b = (checkpoint.load(tmp_path / r) for r in ("straight", "again"))
    for k in a["G"]:
        assert torch.equal(a["G"][k], b["G"][k]), k
    assert a["opt_G"]["param_groups"][0]["lr"] == b["opt_G"]["param_groups"][0]["lr"] < 1e-4


def test_a_resumed_run_trains_with_its_checkpoints_config(tmp_path, caplog):
    run(compose_train(*BASE), tmp_path / "r")
    # composed with another model (as if the config files had changed): the run keeps its own, and says so
    summary = run(compose_train(*BASE, "train.steps=12", "model.width=8", f"resume={tmp_path / 'r'}"), tmp_path / "r")
    assert summary["step"] == 12 and checkpoint.load(tmp_path / "r")["config"]["model"]["width"] == 4
    assert "the configs now compose other values of model.width; the run keeps its own" in caplog.text
    with pytest.raises(ConfigError, match="raise train.steps"):
        run(compose_train(*BASE, f"resume={tmp_path / 'r'}"), tmp_path / "r")


def test_resume_without_a_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(checkpoint.CheckpointError, match="no such file"):
        run(compose_train(*BASE, f"resume={tmp_path / 'empty'}"), tmp_path / "new")


def _start(run_dir, *extra):
    cmd = [sys.executable, "-m", "ganrun", "train", "dataset=ring", "model=mlp", "model.hidden=[64,64]",
           "train.steps=1000000", "train.log_every=10", "train.progress=false", f"hydra.run.dir={run_dir}", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=120):
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, "timed out"
        time.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_signal_saves_a_checkpoint_and_resume_continues(tmp_path, sig):
    run_dir = tmp_path / "r"
    proc = _start(run_dir, "train.ckpt_every=0")
    _wait_for(run_dir / "train.log", proc)
    time.sleep(3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "continue with: ganrun train resume=" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    ckpt = checkpoint.load(run_dir)
    assert 0 < ckpt["step"] == summary["step"]
    printed = err.strip().splitlines()[-1].split("continue with: ", 1)[1].split()  # ganrun train resume=RUN
    assert printed == ["ganrun", "train", f"resume={run_dir}"]
    r = subprocess.run([sys.executable, "-m", *printed, f"train.steps={ckpt['step'] + 5}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert checkpoint.load(run_dir)["step"] == ckpt["step"] + 5


def test_kill_9_never_leaves_a_broken_last_checkpoint(tmp_path):
    run_dir = tmp_path / "r"
    proc = _start(run_dir, "train.ckpt_every=1")  # a checkpoint write every step: kills land mid-write
    _wait_for(run_dir / "checkpoints" / "last.pt", proc)
    steps = []
    for _ in range(5):
        time.sleep(0.37)
        steps.append(checkpoint.load(run_dir)["step"])  # always a complete file
    proc.kill()
    proc.communicate()
    assert checkpoint.load(run_dir)["step"] >= steps[-1] > steps[0]
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 1  # at most the temp file of the write that was cut off


def _nan_g_loss_from(monkeypatch, bad_calls):
    """Make the non-saturating G loss NaN on the listed call numbers (1-based)."""
    from ganrun.training import losses

    original = losses.NonSaturating.g_loss
    calls = {"n": 0}

    def g_loss(self, fake_logits):
        calls["n"] += 1
        value = original(self, fake_logits)
        return value * float("nan") if calls["n"] in bad_calls else value

    monkeypatch.setattr(losses.NonSaturating, "g_loss", g_loss)


def test_nan_stops_the_run_and_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    from ganrun.training.loop import NonFiniteError

    _nan_g_loss_from(monkeypatch, set(range(3, 100)))
    cfg = compose_train(*TINY, *TINY_MODEL["dcgan"], "train.steps=8", "train.ckpt_every=2", "train.log_every=4")
    with pytest.raises(NonFiniteError, match="step 4: loss/[DG] = nan; lower the learning rates"):
        run(cfg, tmp_path)
    ckpt = checkpoint.load(tmp_path)
    assert ckpt["step"] == 2 and all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"


def test_on_nan_skip_drops_the_bad_update(tmp_path, monkeypatch):
    _nan_g_loss_from(monkeypatch, {3})
    cfg = compose_train(*TINY, *TINY_MODEL["dcgan"], "train.steps=6", "train.on_nan=skip")
    summary = run(cfg, tmp_path)
    assert summary["status"] == "completed" and summary["skipped_updates"] == 1
    ckpt = checkpoint.load(tmp_path)
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())


def test_a_failed_periodic_checkpoint_write_is_reported_and_training_goes_on(tmp_path, monkeypatch, caplog):
    original = checkpoint.save

    def flaky(path, ckpt):
        if path.name == "step_000002.pt":
            raise OSError(28, "No space left on device")
        original(path, ckpt)

    monkeypatch.setattr(checkpoint, "save", flaky)
    summary = run(compose_train(*TINY, *TINY_MODEL["dcgan"]), tmp_path)
    assert summary["status"] == "completed"
    assert "could not write" in caplog.text and "No space left on device" in caplog.text
    assert not (tmp_path / "checkpoints" / "step_000002.pt").exists()
    assert checkpoint.load(tmp_path)["step"] == 4


def test_a_second_signal_aborts_at_once():
    from ganrun.training.loop import StopFlag

    with StopFlag() as stop:
        assert signal.getsignal(signal.SIGTERM) == stop._handle
        os.kill(os.getpid(), signal.SIGTERM)  # the first: a flag for the loop
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the second: abort now
    assert signal.getsignal(signal.SIGTERM) != stop._handle  # handlers restored
