"""`ganrun train`: compose the config with Hydra, check it, build, fit, write the summary."""

from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ganrun import checkpoint, config, distributed, trackers
from ganrun.build import build
from ganrun.config import ConfigError
from ganrun.errors import UserError
from ganrun.loop import Interrupted, NonFiniteError, fit, write_summary
from ganrun.objectives import VAEObjective
from ganrun.sweep import metric_cell

log = logging.getLogger("ganrun")

config.register()

# Errors a user can fix: one line, exit code 2, no traceback.
USER_ERRORS = (UserError,)
EXIT_INTERRUPTED = 3  # SIGINT/SIGTERM: the checkpoint is saved, `resume=` continues


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_resumable(cfg: DictConfig, ckpt: dict[str, Any], shape: tuple[int, ...]) -> None:
    """A resumed run needs data of the checkpoint's shape and steps left to train."""
    if list(shape) != list(ckpt["data"]["shape"]):
        raise ConfigError(f"resume: the data shape {list(shape)} differs from the checkpoint's "
                          f"{ckpt['data']['shape']}; the dataset's files changed since the run began")
    if ckpt["step"] >= cfg.train.steps:
        raise ConfigError(f"resume: the checkpoint is at step {ckpt['step']}, train.steps={cfg.train.steps}; "
                          f"raise train.steps to train further")


def continue_config(cfg: DictConfig, ckpt: dict[str, Any]) -> DictConfig:
    """The config a resumed run trains with: its checkpoint's, with the keys a run may change from `cfg`."""
    resumed, changed = config.resumed_config(ckpt["config"], cfg)
    if changed:  # the config files or ganrun's defaults changed since the run began: the run keeps its own
        log.warning("resume: the configs now compose other values of %s; the run keeps its own",
                    ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else ""))
    return resumed


def log_hparams(writer: Any, summary: dict[str, Any]) -> None:
    """TensorBoard HParams: the run's overrides against its final losses and metrics, so the runs of a
    sweep line up in the HParams tab (metrics as hparams/<name>, apart from the training curves). The
    other trackers keep the final numbers under the same names (they have the whole config already)."""
    params: dict[str, Any] = {}
    for override in summary.get("overrides", []):
        key, _, value = override.lstrip("+~").partition("=")
        params[key] = _scalar(value)
    if not params:
        params["defaults"] = True
    results = {**summary.get("losses", {}), **{f"eval/{k}": v for k, v in summary.get("metrics", {}).items()}}
    metrics = {f"hparams/{k}": float(v) for k, v in results.items() if isinstance(v, (int, float))}
    writer.add_hparams(params, metrics, run_name=".", global_step=summary.get("step"))


def _scalar(text: str) -> Any:
    """An override's value as HParams takes it: bool, int, float or the text itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class NullWriter:
    """What ranks other than 0 log to: nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Validate, build and train one run into run_dir (continuing cfg.resume when set, with the checkpoint's
    own config but for the keys a run may change midway); returns its summary."""
    config.validate(cfg)
    ckpt = checkpoint.load(cfg.resume) if cfg.get("resume") else None
    if ckpt is not None:
        cfg = continue_config(cfg, ckpt)
        config.validate(cfg)
    ranks = distributed.setup()
    if ranks.active:  # every rank works in rank 0's run folder
        own, run_dir = run_dir, Path(distributed.broadcast_object(str(run_dir)))
        if own != run_dir and own.is_dir() and not any(own.iterdir()):
            own.rmdir()  # the empty folder Hydra made for this rank's own timestamp
    if ckpt is None and (run_dir / "checkpoints" / "last.pt").exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with resume={run_dir} "
                          f"or pick a new folder with hydra.run.dir=DIR")
    seed_everything(cfg.train.seed)
    exp = build(cfg, ckpt)
    if ckpt is not None:
        check_resumable(cfg, ckpt, exp.data.shape)
    if ranks.active:
        if cfg.train.sync_bn:
            exp.G, exp.D = (distributed.sync_batchnorm(m, exp.device) for m in (exp.G, exp.D))
        for module in (exp.G, exp.D):
            distributed.broadcast_module(module)
    n_g, n_d = (sum(p.numel() for p in m.parameters()) for m in (exp.G, exp.D))
    vae = isinstance(exp.objective, VAEObjective)  # model=vae: decoder in G's place, encoder in D's
    log.info("data %s %s, %s %s params, %s %s params, loss %s, device %s -> %s", exp.data.name,
             tuple(exp.data.shape), "decoder" if vae else "G", f"{n_g:,}", "encoder" if vae else "D", f"{n_d:,}",
             "ELBO (model=vae)" if vae else cfg.loss._target_.rsplit(".", 1)[-1], exp.device, run_dir)
    # only rank 0 logs; a resumed run continues the checkpoint's tracker runs
    writer = trackers.open_trackers(cfg, run_dir, ckpt) if ranks.main else NullWriter()
    overrides = task_overrides()
    summary: dict[str, Any] = {"status": "failed", "run_dir": str(run_dir), "overrides": overrides}
    if getattr(exp.data, "skipped", None):  # unreadable image files, by name
        summary["skipped_files"] = list(exp.data.skipped)
    try:
        summary.update(fit(exp, cfg, run_dir, writer, resume=ckpt, extra=[writer] if ranks.main else None,
                           overrides=overrides))
        if ranks.main:
            log_hparams(writer, summary)
    except Interrupted as e:
        summary.update({"status": "interrupted", "step": e.step, "error": str(e)})
        raise
    except Exception as e:  # a NaN, a full disk, a bug: the summary says what stopped the run
        summary["error"] = error_text(e)
        raise
    finally:
        try:
            writer.close(summary["status"])
        finally:
            if ranks.main:
                write_summary(run_dir, summary)
    losses = ", ".join(f"{k} {v:.4f}" for k, v in summary["losses"].items() if k != "loss/penalty")
    log.info("done: %d steps in %.1f s; %s; samples in %s", summary["step"], summary["wall_time_s"], losses,
             run_dir / "samples")
    if summary.get("metrics"):  # the final scores, each distance beside real data's own
        log.info("metrics: %s", ", ".join(f"{k} {metric_cell(summary, k)}" for k in sorted(summary["metrics"])))
    return summary


def task_overrides() -> list[str]:
    """The overrides this run was composed from (a resume's `resume=` left out: they compose the run itself)."""
    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task if not str(o).startswith("resume=")]


def error_text(error: BaseException) -> str:
    """What stopped a run, for its summary: a user error's own line, anything else with its type."""
    return str(error) if isinstance(error, (UserError, NonFiniteError)) else f"{type(error).__name__}: {error}"


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
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: rank 0's folder is the run's
        point_latest(run_dir.parent if sweeping else run_dir, Path("outputs/multirun" if sweeping else "outputs"))
    try:
        return objective(cfg, run(cfg, run_dir))
    except Interrupted as e:
        print(f"ganrun train: {e}; continue with: ganrun train resume={run_dir}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)  # preemption stops a sweep too
    except USER_ERRORS + (NonFiniteError,) as e:
        print(f"ganrun train: error: {e}", file=sys.stderr)
        _mark_failed(run_dir, e)
        if sweeping:
            return None
        sys.exit(2)
    except Exception as e:
        _mark_failed(run_dir, e)  # the report and the sweep table show the error, not "running"
        if not sweeping:
            raise
        log.exception("run %s failed; the sweep goes on", run_dir)
        return None


def point_latest(target: Path, root: Path) -> None:
    """ROOT/latest -> target (a relative symlink, replaced atomically) when target is a folder below ROOT: so
    `outputs/latest` is the newest run and `outputs/multirun/latest` the newest sweep, for the commands that
    follow (`ganrun sample ckpt=outputs/latest`). Where links cannot be made, nothing happens."""
    root, target = root.absolute(), target.absolute()
    if root not in target.parents:
        return
    link, temp = root / "latest", root / f".latest.{os.getpid()}"
    try:
        temp.unlink(missing_ok=True)
        temp.symlink_to(os.path.relpath(target, root), target_is_directory=True)
        os.replace(temp, link)
    except OSError as e:  # a file system without symbolic links
        log.debug("could not point %s at %s (%s)", link, target, e)


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
