"""torch's optimizers without the start-up cost of their torch.compile hooks.

Every torch optimizer wraps `add_param_group` (called by its constructor), `zero_grad`, `state_dict`,
`load_state_dict` and `step` in code that imports `torch._dynamo` on first use, only to tell the compiler
where to stop tracing. That import is about 1 s on a 2-core CPU, a third of a run's time to its first step.
`eager(cls)` is `cls` with those five methods called past the compiler's wrappers (`inspect.unwrap`), and
`step` under the grad mode torch's own wrapper sets: the same class to a checkpoint (same state dict, same
numbers; tests/test_eager.py checks both against `cls`). Every run can use it: `train.compile` compiles G
and D, and the optimizers step outside them.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
from torch.optim import Optimizer

WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def _unwrapped(cls: type, name: str) -> Any:
    """`cls.name` past its decorators, or None when torch no longer wraps it (nothing then to skip)."""
    method = getattr(cls, name, None)
    inner = inspect.unwrap(method) if method is not None else None
    return inner if inner is not method else None


@functools.cache
def eager(cls: type[Optimizer]) -> type[Optimizer]:
    """`cls` (a torch.optim optimizer) without the torch.compile hooks, named as `cls`; `cls` itself when one
    of its methods is not wrapped as expected (another torch version: it then works as before)."""
    if not (isinstance(cls, type) and issubclass(cls, Optimizer) and cls.__module__.startswith("torch.optim.")):
        return cls
    inner = {name: _unwrapped(cls, name) for name in (*WRAPPED, "step")}
    if not all(inner.values()):
        return cls
    raw_step = inner.pop("step")

    def step(self: Optimizer, closure: Any = None) -> Any:
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            return raw_step(self, closure)

    return type(cls.__name__, (cls,), {**inner, "step": functools.wraps(raw_step)(step),
                                       "__module__": __name__, "__doc__": cls.__doc__})
