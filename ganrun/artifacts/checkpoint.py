"""Checkpoints: tensors and plain containers only, so torch.load(weights_only=True) reads them.

A checkpoint is a dict:
    format   "ganrun/1"
    step     completed G updates
    G, D, opt_G, opt_D   state_dicts
    rng      {"torch": ByteTensor, "cuda": [ByteTensor, ...], "numpy": [...], "python": (...)}
    config   the resolved run config as plain dicts/lists
    data     {"kind": "image" | "points", "shape": [...]} so sample.py can rebuild G alone
    overrides  the command-line overrides the run was composed from (`resume=` composes the same run)
It is written to a temporary file in the same folder, flushed to disk, then renamed over the
target, so a reader (or a crash) only ever sees the old or the new complete file.
"""

from __future__ import annotations

import os
import random
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganrun.errors import CheckpointError  # noqa: F401  (re-exported)

FORMAT = "ganrun/1"



def rng_state() -> dict[str, Any]:
    """The torch CPU and CUDA, NumPy and Python generator states, as tensors and plain containers."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() saved (older checkpoints may lack the NumPy and Python parts)."""
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state.get("cuda"):
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "python" in state:
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))


def save(path: str | Path, ckpt: dict[str, Any]) -> None:
    """Write `ckpt` to `path` atomically (temp file + fsync + rename), with the permissions any new file gets
    (mkstemp's are its owner's alone: colleagues on a shared machine could not read the run's checkpoints)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # less the umask, as open() does
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a ganrun checkpoint safely (no pickled code runs); CheckpointError says what is wrong."""
    path = Path(path)
    if path.is_dir():  # a run folder: take its last checkpoint
        last = path / "checkpoints" / "last.pt"
        if not last.is_file() and (runs := runs_below(path)):
            raise CheckpointError(f"ckpt={path} is a folder of {len(runs)} run(s), not a run: pass one, e.g. the "
                                  f"newest, {runs[-1]}")
        path = last
    if not path.is_file():
        raise CheckpointError(f"ckpt={path}: no such file; pass a .pt file or a run folder with checkpoints/last.pt")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, code-carrying pickle refused by weights_only
        raise CheckpointError(f"ckpt={path} is not a ganrun checkpoint: {why_unreadable(e)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"ckpt={path} is not a ganrun checkpoint (no format={FORMAT!r} entry)")
    return ckpt


def runs_below(folder: Path) -> list[Path]:
    """The run folders (with checkpoints/last.pt) one or two levels below `folder`, oldest checkpoint first: a
    named run's outputs/NAME/DATE_TIME, or outputs/DATE/TIME."""
    found = {p.parent.parent for pattern in ("*/checkpoints/last.pt", "*/*/checkpoints/last.pt")
             for p in folder.glob(pattern)}
    runs = [run for run in found if not run.is_symlink()]  # outputs/latest: a link to one of them
    return sorted(runs, key=lambda run: (run / "checkpoints" / "last.pt").stat().st_mtime)


def why_unreadable(error: Exception) -> str:
    """Why torch.load refused a file, in ganrun's words (never torch's advice to turn weights_only off)."""
    import pickle

    text = str(error).strip()
    if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in text:
        return ("it holds Python objects beyond tensors and plain containers, which ganrun never unpickles "
                "(a checkpoint ganrun wrote holds none)")
    if isinstance(error, (EOFError, RuntimeError)) or "zip" in text.lower():
        return "the file is empty, cut short or not written by torch.save"
    return (text.splitlines() or [type(error).__name__])[0][:160]


def first_mismatch(module: "torch.nn.Module", state: dict[str, Any]) -> str | None:
    """The first tensor where a state_dict does not fit a module (missing, unexpected or another shape)."""
    own = module.state_dict()
    for key, value in own.items():
        if key not in state:
            return f"{key} is missing from the checkpoint"
        if tuple(state[key].shape) != tuple(value.shape):
            return f"{key} has shape {list(state[key].shape)} in the checkpoint but {list(value.shape)} in the model"
    extra = [k for k in state if k not in own]
    return f"{extra[0]} in the checkpoint has no place in the model" if extra else None
