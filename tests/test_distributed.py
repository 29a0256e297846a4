"""Data-parallel training under torchrun: 2 CPU processes (gloo) on tiny data stay in sync."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import TINY

from ganrun.artifacts import checkpoint
from ganrun.data.base import epoch_batches


def test_epoch_shards_split_every_epoch_between_ranks():
    per_epoch, world = 5, 2
    shards = [list(zip(range(3), epoch_batches(per_epoch, 0, r, world))) for r in range(world)]
    for e in range(3):
        got = sorted(b for r in range(world) for b in shards[r][e][1][1])
        assert got == list(range(per_epoch))  # each batch of each epoch to exactly one rank
    assert next(epoch_batches(per_epoch, 0, 0, 1)) == (0, [0, 1, 2, 3, 4])
    assert next(epoch_batches(per_epoch, 3, 0, 1)) == (0, [3, 4])  # resume inside an epoch
    assert next(epoch_batches(per_epoch, 3, 1, 2)) == (1, [2, 4])  # rank 1's 4th batch is global batch 7


def test_two_ranks_train_in_sync_and_only_rank_0_writes(tmp_path):
    overrides = [*TINY, "dataset=ring", "model=mlp", "model.hidden=[16,16]", "train.steps=6", "train.ckpt_every=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(Path(__file__).parent / "ddp_worker.py"), str(tmp_path), *overrides]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert not torch.equal(r0["batch"], r1["batch"])  # each rank reads its own shard
    for part in ("G", "D"):
        for k in r0[part]:
            assert torch.equal(r0[part][k], r1[part][k]), (part, k)  # averaged gradients keep them equal
    ckpt = checkpoint.load(tmp_path / "run")
    assert ckpt["step"] == 6
    for k in r0["G"]:
        assert torch.equal(ckpt["G"][k], r0["G"][k])
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "last.pt", "step_000003.pt", "step_000006.pt"]


def test_sync_batchnorm_converts_on_cuda_and_keeps_the_parameters(caplog):
    from ganrun.models import dcgan
    from ganrun.training.distributed import sync_batchnorm

    G, D = dcgan.make((1, 28, 28), latent_dim=4, width=4)
    params = list(D.parameters())
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    synced = sync_batchnorm(D, torch.device("cuda"))  # converting needs no GPU; running does
    assert n_bn > 0 and sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) == n_bn
    assert all(a is b for a, b in zip(params, synced.parameters()))  # optimizers built on D stay valid
    with caplog.at_level("WARNING"):
        assert sync_batchnorm(G, torch.device("cpu")) is G  # no SyncBatchNorm on CPU: unchanged, said once
    assert "SyncBatchNorm needs CUDA" in caplog.text
    caplog.clear()
    mlp_G = torch.nn.Sequential(torch.nn.Linear(2, 2))
    assert sync_batchnorm(mlp_G, torch.device("cpu")) is mlp_G and not caplog.text  # nothing to sync
