"""`ganrun train -m resume=SWEEP`: finish a sweep that was stopped (Ctrl-C, SIGTERM, a killed job, a
lost machine). The sweep's own overrides are read back from SWEEP/multirun.yaml (any given on the command
line must be the same), the jobs are numbered as before, and each job in its old folder: a completed run
is skipped (its summary stands), a run with a checkpoint continues from it (as `resume=RUN` would, so it
ends with the weights an uninterrupted run has), and a run that never started or saved nothing trains
from the start. The table at the end covers every run. Each job's own .hydra/ record is kept; this
resume's record goes to .hydra/resume-DATE_TIME/."""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from ganrun.config.paths import rebase
from ganrun.errors import ConfigError

log = logging.getLogger("ganrun")

ENV = "GANRUN_RESUME_SWEEP"  # set for the jobs of a resumed sweep (inherited by launcher processes)
CWD_ENV = "GANRUN_SWEEP_CWD"  # ... and the folder the sweep was launched from (its relative data paths start there)
MANIFEST = "multirun.yaml"  # what Hydra writes in a sweep folder when it starts


def is_sweep(args: list[str]) -> bool:
    return "-m" in args or "--multirun" in args


def sweep_args(args: list[str], stamp: str | None = None) -> list[str]:
    """The arguments that finish the sweep resume=SWEEP names: its own task and Hydra overrides, in its folder
    (the given hydra.* arguments win); a folder that is no sweep, an Optuna search or different overrides
    are refused with one line."""
    resume = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    folder = Path(resume[-1])
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise ConfigError(f"resume={folder}: not a sweep folder (no {MANIFEST}); give the folder a "
                          f"`ganrun train -m` made, e.g. resume=outputs/multirun/latest")
    saved = OmegaConf.load(manifest)
    task = [str(o) for o in saved.hydra.overrides.task if not str(o).startswith("resume=")]
    given = [a for a in args if a not in ("-m", "--multirun") and not a.startswith(("resume=", "hydra.", "hydra/"))]
    if given and sorted(given) != sorted(task):
        raise ConfigError(f"resume={folder}: that sweep ran `{' '.join(task)}`, not `{' '.join(given)}`; "
                          f"resume it with those overrides (or none), or start a new sweep without resume=")
    if "optuna" in str(saved.hydra.sweeper.get("_target_", "")).lower():
        raise ConfigError(f"resume={folder}: an Optuna search draws new trials each time and cannot be finished "
                          f"job by job; start a new search (hydra.sweeper.n_trials=N)")
    hydra_saved = [str(o) for o in saved.hydra.overrides.hydra if not str(o).startswith("hydra.sweep.dir=")]
    hydra_given = [a for a in args if a.startswith(("hydra.", "hydra/"))]
    stamp = stamp or datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    os.environ[ENV] = str(folder.resolve())
    os.environ[CWD_ENV] = launched_in(folder)
    return ["-m", *task, *hydra_saved, *hydra_given, f"hydra.sweep.dir={folder.resolve()}",
            f"hydra.output_subdir=.hydra/resume-{stamp}"]


def launched_in(folder: Path) -> str:
    """The folder a sweep was first launched from, as its first job's own record has it ("" if none: its
    multirun.yaml is rewritten by each resume, so it names the last one's)."""
    jobs = sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    for job in jobs:
        record = job / ".hydra" / "hydra.yaml"
        if record.is_file():
            return str(OmegaConf.select(OmegaConf.load(record), "hydra.runtime.cwd", default="") or "")
    return ""


def resuming() -> bool:
    """True in a job of a resumed sweep."""
    return bool(os.environ.get(ENV))


def prepare_job(cfg: DictConfig, run_dir: Path, output_subdir: str | None,
                overrides: list[str]) -> dict[str, Any] | None:
    """In a resumed sweep's job: the summary of a run that already completed (to be skipped), else None with
    cfg.resume set to the job's folder when it holds a checkpoint. A job that never ran gets its .hydra/
    record from this resume's; a folder that holds another job's run is refused."""
    record = run_dir / ".hydra"
    if (record / "overrides.yaml").is_file():
        before = [str(o) for o in OmegaConf.load(record / "overrides.yaml")]
        if before != overrides:
            raise ConfigError(f"resumed sweep: {run_dir} holds the run of `{' '.join(before)}`, not of "
                              f"`{' '.join(overrides)}`; the sweep's jobs changed since it began")
    elif output_subdir:
        for f in (run_dir / output_subdir).glob("*.yaml"):  # the job's first record: as a fresh sweep writes it
            shutil.copy2(f, record / f.name)
    summary_file = run_dir / "summary.json"
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        if summary.get("status") == "completed":
            log.info("resumed sweep: %s already completed; skipped", run_dir)
            return summary
    if (run_dir / "checkpoints" / "last.pt").is_file():
        log.info("resumed sweep: %s continues from its last checkpoint", run_dir)
        with open_dict(cfg):
            cfg.resume = str(run_dir)
        return None
    with open_dict(cfg):  # a job that starts now reads the data the sweep's other jobs read
        for change in rebase(cfg, os.environ.get(CWD_ENV)):
            log.info("resumed sweep: %s", change)
    return None
