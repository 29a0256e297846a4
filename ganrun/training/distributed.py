"""Data-parallel training over torch.distributed, started by torchrun:

    torchrun --nproc_per_node=N -m ganrun train ...      (multi-node: torchrun's --nnodes / --rdzv-* flags)

Every rank holds G and D (the same initial weights, broadcast from rank 0), reads its own shard of
each epoch (global batch j goes to rank j mod N) and draws its own noise; after every backward the
gradients are averaged over the ranks in one flat all-reduce, so each optimizer step sees the
gradient of the N-times larger global batch and the ranks stay in sync. This is the gradient
averaging DistributedDataParallel does, written out because a GAN step breaks DDP's bookkeeping:
D runs twice (real, fake) before one backward, the G step runs D with frozen weights, and gradient
penalties differentiate D twice. Only rank 0 logs, writes samples, evaluates and checkpoints.
NCCL on CUDA (one GPU per rank, cuda:LOCAL_RANK), gloo on CPU.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


_world = World()


def world() -> World:
    """This process's place in the job (a single process: rank 0 of 1)."""
    return _world


def setup() -> World:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); idempotent."""
    global _world
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        _world = World(dist.get_rank(), dist.get_world_size(), local_rank)
        atexit.register(leave)
    return _world


def leave() -> None:
    """Destroy the process group before the interpreter shuts down (at exit): left to the interpreter's
    teardown, gloo's threads can abort a rank that already finished its work ("terminate called without an
    active exception", exit -6) while rank 0 still writes the end-of-run metrics."""
    if dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(module: nn.Module) -> None:
    """Replace each gradient by its mean over the ranks (one flat all-reduce)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= _world.size
    for g, avg in zip(grads, _unflatten_dense_tensors(flat, grads)):
        g.copy_(avg)


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, 0)


def average_scalars(values: dict[str, Tensor]) -> dict[str, Tensor]:
    """The mean over the ranks of each scalar (logging steps only), so every rank decides alike."""
    keys = sorted(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(stacked)
    return dict(zip(keys, stacked / _world.size))


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is true on any rank."""
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_object(obj: Any) -> Any:
    """Rank 0's value of a picklable object, on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, 0)
    return box[0]


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` with its BatchNorm layers turned into SyncBatchNorm, whose statistics cover every
    rank's batch (train.sync_bn=true), when several ranks train on CUDA. The parameters are the same
    objects, so optimizers built on them stay valid. PyTorch implements SyncBatchNorm for GPUs only:
    on CPU ranks the module comes back unchanged, with a warning."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return module
    if device.type != "cuda":
        log.warning("train.sync_bn: SyncBatchNorm needs CUDA; on %s each rank keeps its own BatchNorm statistics",
                    device.type)
        return module
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)
