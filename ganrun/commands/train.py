"""`ganrun train`: Hydra composes the config; one run (ganrun.training.run) or each run of a sweep; the
objective a sweeper minimises; `outputs/latest`; what a failed or interrupted run says."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ganrun.commands import resume_sweep
from ganrun.config import ConfigError
from ganrun.errors import UserError
from ganrun.training.loop import Interrupted, NonFiniteError, write_summary
from ganrun.training.run import error_text, run

log = logging.getLogger(__name__)



# Errors a user can fix: one line, exit code 2, no traceback.
USER_ERRORS = (UserError,)
EXIT_INTERRUPTED = 3  # SIGINT/SIGTERM: the checkpoint is saved, `resume=` continues


def task_overrides() -> list[str]:
    """The overrides this run was composed from (a resume's `resume=` left out: they compose the run itself)."""
    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task if not str(o).startswith("resume=")]


def _mark_failed(run_dir: Path, error: BaseException) -> None:
    """Leave a failed status in summary.json (unless the run already wrote its own), for sweep tables."""
    path = run_dir / "summary.json"
    if not path.is_file():
        write_summary(run_dir, {"status": "failed", "error": error_text(error),
                                "run_dir": str(run_dir), "overrides": task_overrides()})


@hydra.main(config_path="pkg://ganrun.configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the run's `objective` (a final metric or loss) for sweepers such as Optuna.

    In a sweep (-m) a failing run is logged, marked failed in its summary.json and skipped, so the
    other runs go on; the sweep table shows it and the sweep exits non-zero.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    before = None
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: rank 0's folder is the run's
        before = point_latest(run_dir.parent if sweeping else run_dir, Path("outputs/multirun" if sweeping else "outputs"))
    try:
        if sweeping and resume_sweep.resuming():
            done = resume_sweep.prepare_job(cfg, run_dir, hydra_cfg.output_subdir, task_overrides())
            if done is not None:
                return objective(cfg, done)
        return objective(cfg, run(cfg, run_dir, task_overrides()))
    except Interrupted as e:
        again = f"-m resume={run_dir.parent}" if sweeping else f"resume={run_dir}"
        print(f"ganrun train: {e}; continue with: ganrun train {again}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)  # preemption stops a sweep too
    except USER_ERRORS + (NonFiniteError,) as e:
        print(f"ganrun train: error: {e}", file=sys.stderr)
        _mark_failed(run_dir, e)
        if sweeping:
            return None
        if before is not None and not cfg.get("resume") and not (run_dir / "checkpoints").is_dir():
            point_latest(Path("outputs") / before, Path("outputs"))  # latest: still the last run that trained
        sys.exit(2)
    except Exception as e:
        _mark_failed(run_dir, e)  # the report and the sweep table show the error, not "running"
        if not sweeping:
            raise
        log.exception("run %s failed; the sweep goes on", run_dir)
        return None


def point_latest(target: Path, root: Path) -> str | None:
    """ROOT/latest -> target (a relative symlink, replaced atomically) when target is a folder below ROOT: so
    `outputs/latest` is the newest run and `outputs/multirun/latest` the newest sweep, for the commands that
    follow (`ganrun sample ckpt=outputs/latest`). Where links cannot be made, nothing happens. Returns where
    the link pointed before (relative to ROOT), if anywhere."""
    root, target = root.absolute(), target.absolute()
    if root not in target.parents:
        return None
    link, temp = root / "latest", root / f".latest.{os.getpid()}"
    before = os.readlink(link) if link.is_symlink() else None
    try:
        temp.unlink(missing_ok=True)
        temp.symlink_to(os.path.relpath(target, root), target_is_directory=True)
        os.replace(temp, link)
    except OSError as e:  # a file system without symbolic links
        log.debug("could not point %s at %s (%s)", link, target, e)
    return before


def objective(cfg: DictConfig, summary: dict[str, Any]) -> float:
    """The number `ganrun train` returns to a sweeper (Optuna minimises it unless told to maximise): the final
    metric or loss named by `objective`; auto: FD for images, the energy distance for 2-D mixtures (finite
    however bad the samples, unlike the reverse KL), else loss/G."""
    values = {**summary.get("losses", {}), **summary.get("metrics", {})}
    name = cfg.get("objective", "auto")
    if name == "auto":
        name = next((k for k in ("fd", "energy") if k in values), "loss/G")
    if name not in values:
        raise ConfigError(f"objective={name}: this run has no such final value; use one of "
                          f"{', '.join(sorted(values))} (the run itself completed in {summary['run_dir']})")
    return float(values[name])
