"""How a training step computes and applies its updates: float32, bf16 or fp16 (with gradient scalers),
and the one `apply_update` that every objective uses (backward, gradient sync, an optional look at the
gradients, and the optimizer step unless the loss is not finite)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

log = logging.getLogger("ganrun")


def grad_norm(module: nn.Module) -> Tensor:
    """The total L2 norm of a module's current gradients."""
    norms = [p.grad.norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


class Precision:
    """How the training step computes: "32" (plain float32), "bf16" (autocast to bfloat16) or "fp16"
    (autocast to float16 with a gradient scaler per network, so small gradients do not underflow;
    the scaler skips a step whose gradients overflowed and lowers its scale). Losses are taken on
    float32 logits. Under either autocast, gradient penalties (WGAN-GP, R1, DRAGAN) run in float32: their
    double backward would need its own scaling to be safe in float16, and bfloat16 resolves a gradient norm
    near 1 only to about 0.004 (8 bits), coarse for a penalty on that norm's distance from 1."""

    def __init__(self, mode: str = "32", device_type: str = "cpu"):
        self.mode = mode
        self.device_type = device_type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        self.scalers = ({"D": torch.amp.GradScaler(device_type), "G": torch.amp.GradScaler(device_type)}
                        if mode == "fp16" else {})

    def autocast(self, penalty: bool = False) -> Any:
        if self.dtype is None or penalty:
            return contextlib.nullcontext()  # float32: no autocast machinery on the hot path
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: Tensor, net: str) -> None:
        (self.scalers[net].scale(loss) if self.scalers else loss).backward()

    def unscale(self, opt: torch.optim.Optimizer, net: str) -> None:
        """Gradients back to their true size before they are measured (fp16 only)."""
        if self.scalers:
            self.scalers[net].unscale_(opt)

    def step(self, opt: torch.optim.Optimizer, net: str, *more: torch.optim.Optimizer) -> None:
        """Step `opt` (and `more`, optimizers whose gradients came from the same scaled loss)."""
        if self.scalers:
            for o in (opt, *more):
                self.scalers[net].step(o)
            self.scalers[net].update()
        else:
            for o in (opt, *more):
                o.step()

    def state_dict(self) -> dict[str, Any]:
        return {net: s.state_dict() for net, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for net, s in self.scalers.items():
            if net in state:
                s.load_state_dict(state[net])


FP32 = Precision()

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 flags of a CPU that multiplies bfloat16 in hardware


def native_bf16_cpu(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The flag by which this CPU computes bfloat16 in hardware ("" if none or unknown: only Linux's
    /proc/cpuinfo is read). Without it oneDNN emulates bfloat16, slower than float32."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path(cpuinfo).read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return ""
    return next((f for f in NATIVE_BF16_FLAGS if f in flags), "")


def settle_precision(mode: str, device_type: str, images: bool, cpuinfo: str = "/proc/cpuinfo") -> str:
    """train.precision as "32", "bf16" or "fp16"; auto (said in one start-up line): bf16 for image models on a
    CPU that computes bfloat16 in hardware (there a DCGAN step took 0.5-0.8 of float32's time, for scores at
    equal steps within the seeds' spread on three sets of four, 7% worse on the labelled digits;
    docs/results.md), else 32 (CUDA included: not measured here)."""
    if mode != "auto":
        return mode
    if device_type != "cpu":
        why = f"not measured on {device_type}; train.precision=bf16 there"
    elif not images:
        why = "a model of points"
    elif not (flag := native_bf16_cpu(cpuinfo)):
        why = "this CPU has no bfloat16 in hardware"
    else:
        log.info("train.precision=auto: this CPU computes bfloat16 in hardware (%s), so the steps run in bfloat16 "
                 "autocast, losses and penalties in float32 (train.precision=32 for float32 throughout)", flag)
        return "bf16"
    log.info("train.precision=auto: float32 (%s)", why)
    return "32"


def apply_update(loss: Tensor, net: str, opts: tuple[torch.optim.Optimizer, ...], modules: tuple[nn.Module, ...],
                 precision: Precision = FP32, sync: Callable[[nn.Module], None] | None = None,
                 skip_nonfinite: bool = False, measure: Callable[[], None] | None = None,
                 after_backward: Callable[[], None] | None = None) -> bool:
    """Backpropagate `loss` (scaled under fp16), average the gradients of `modules` over the ranks (sync),
    run `measure` on the gradients (unscaled first), then step `opts` unless `skip_nonfinite` is on and the
    loss is not finite (the scaler itself skips overflowing fp16 steps). Returns whether it stepped."""
    precision.backward(loss, net)
    if after_backward:
        after_backward()
    if sync:
        for module in modules:
            sync(module)
    if measure:
        precision.unscale(opts[0], net)
        measure()
    if skip_nonfinite and not precision.scalers and not bool(torch.isfinite(loss)):
        return False
    precision.step(opts[0], net, *opts[1:])
    return True
