"""Checkpoints: safe to load, written atomically, refused when foreign or corrupt."""

import os

import pytest
import torch

from ganrun.artifacts import checkpoint


def test_round_trip_with_weights_only(tmp_path):
    ckpt = {"format": checkpoint.FORMAT, "step": 3, "G": {"w": torch.ones(2)}, "rng": checkpoint.rng_state(),
            "config": {"train": {"steps": 3}, "model": {"hidden": [1, 2]}}}
    checkpoint.save(tmp_path / "c.pt", ckpt)
    back = checkpoint.load(tmp_path / "c.pt")
    assert back["step"] == 3 and torch.equal(back["G"]["w"], torch.ones(2))
    assert back["config"]["model"]["hidden"] == [1, 2]
    assert list(tmp_path.iterdir()) == [tmp_path / "c.pt"]  # no temp file left behind


def test_a_checkpoint_is_readable_as_any_new_file(tmp_path):
    """The umask decides, as for any file a program creates: with 022, colleagues can read it (a temporary
    file would be the owner's alone)."""
    old = os.umask(0o022)
    try:
        checkpoint.save(tmp_path / "c.pt", {"format": checkpoint.FORMAT, "step": 1})
        os.umask(0o077)
        checkpoint.save(tmp_path / "private.pt", {"format": checkpoint.FORMAT, "step": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.pt").stat().st_mode & 0o777 == 0o600


def test_optimizer_state_loads_with_weights_only(tmp_path):
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], betas=(0.0, 0.9))
    p.sum().backward()
    opt.step()
    checkpoint.save(tmp_path / "o.pt", {"format": checkpoint.FORMAT, "opt": opt.state_dict()})
    assert checkpoint.load(tmp_path / "o.pt")["opt"]["param_groups"][0]["betas"] == (0.0, 0.9)


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"format": checkpoint.FORMAT, "step": 1})

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        checkpoint.save(path, {"format": checkpoint.FORMAT, "step": 2})
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


class Evil:
    def __reduce__(self):
        return (open, ("/tmp/ganrun-pwned-%d" % os.getpid(), "w"))


def test_code_carrying_pickle_runs_nothing(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "x": Evil()}, path)
    marker = "/tmp/ganrun-pwned-%d" % os.getpid()
    with pytest.raises(checkpoint.CheckpointError, match="is not a ganrun checkpoint"):
        checkpoint.load(path)
    assert not os.path.exists(marker)


def test_foreign_and_truncated_files(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"state": torch.ones(1)}, other)
    with pytest.raises(checkpoint.CheckpointError, match="not a ganrun checkpoint"):
        checkpoint.load(other)
    good = tmp_path / "good.pt"
    checkpoint.save(good, {"format": checkpoint.FORMAT, "w": torch.zeros(1000)})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:500])
    with pytest.raises(checkpoint.CheckpointError, match="is not a ganrun checkpoint"):
        checkpoint.load(cut)
    with pytest.raises(checkpoint.CheckpointError, match="no such file"):
        checkpoint.load(tmp_path / "missing.pt")


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    import random

    import numpy as np

    checkpoint.save(tmp_path / "r.pt", {"format": checkpoint.FORMAT, "rng": checkpoint.rng_state()})
    expect = (torch.rand(3), np.random.rand(3), random.random())
    for _ in range(5):  # move every generator on
        torch.rand(3), np.random.rand(3), random.random()
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "r.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1]) and expect[2] == got[2]
