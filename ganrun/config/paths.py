"""A run's relative data paths mean the folder it was launched from: its checkpoints keep that folder, so
`resume=` and `eval ckpt=` read the same files from any folder."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PATH_KEYS = ("dataset.path", "dataset.root")  # the dataset keys that name files or folders


def rebase(cfg: DictConfig, launched_in: str | None) -> list[str]:
    """Make cfg's relative data paths absolute from launched_in (the folder the run began in), where the path
    exists there: a resume or an evaluation from another folder then reads the run's own files. Paths not
    found there (a Hub name, a file since moved) stay as they are. Returns what changed, one line per key."""
    if not launched_in or Path(launched_in).resolve() == Path.cwd().resolve():
        return []
    changed = []
    for key in PATH_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
            continue
        there = Path(launched_in) / value
        if there.exists():
            OmegaConf.update(cfg, key, str(there), merge=False)
            changed.append(f"{key}={value} is read from {launched_in}, where the run began: {there}")
    return changed
