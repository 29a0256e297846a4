"""`ganrun train`: compose the config with Hydra, check it, build, fit, write the summary."""

from __future__ import annotations

import logging
import random
import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ganrun import config
from ganrun.build import build
from ganrun.checkpoint import CheckpointError
from ganrun.config import ConfigError
from ganrun.data import DataError
from ganrun.loop import NonFiniteError, fit, write_summary

log = logging.getLogger("ganrun")

config.register()

# Errors a user can fix: one line, exit code 2, no traceback.
USER_ERRORS = (ConfigError, DataError, CheckpointError)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Validate, build and train one run into run_dir; returns its summary."""
    config.validate(cfg)
    if (run_dir / "checkpoints" / "last.pt").exists():
        raise ConfigError(f"{run_dir} already holds a run; pick a new folder with hydra.run.dir=DIR")
    seed_everything(cfg.train.seed)
    exp = build(cfg)
    n_g, n_d = (sum(p.numel() for p in m.parameters()) for m in (exp.G, exp.D))
    log.info("data %s %s, G %s params, D %s params, loss %s, device %s -> %s", exp.data.name,
             tuple(exp.data.shape), f"{n_g:,}", f"{n_d:,}", cfg.loss._target_.rsplit(".", 1)[-1], exp.device, run_dir)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir))
    summary: dict[str, Any] = {"status": "failed", "run_dir": str(run_dir),
                               "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []}
    try:
        summary.update(fit(exp, cfg, run_dir, writer))
    except NonFiniteError as e:
        summary["error"] = str(e)
        raise
    finally:
        writer.close()
        write_summary(run_dir, summary)
    log.info("done: %d steps in %.1f s; loss/D %.4f, loss/G %.4f; samples in %s", summary["step"],
             summary["wall_time_s"], summary["losses"]["loss/D"], summary["losses"]["loss/G"], run_dir / "samples")
    return summary


@hydra.main(config_path="pkg://ganrun.configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the final G loss (a sweeper's objective)."""
    try:
        summary = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except USER_ERRORS + (NonFiniteError,) as e:
        print(f"ganrun train: error: {e}", file=sys.stderr)
        sys.exit(2)
    return summary["losses"].get("loss/G")
