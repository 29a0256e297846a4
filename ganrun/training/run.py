"""One run from a composed config to its summary: validate, continue a checkpoint's own config when
resuming, build, open the trackers, fit, write summary.json."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ganrun import config
from ganrun.artifacts import checkpoint, trackers
from ganrun.config import ConfigError
from ganrun.config.targets import instantiate
from ganrun.errors import UserError
from ganrun.metrics.floor import metric_cell
from ganrun.training import distributed
from ganrun.training.build import build, build_callbacks
from ganrun.training.callbacks import Callback, Run, TrackerRuns
from ganrun.training.loop import Interrupted, NonFiniteError, first_step, fit, write_summary
from ganrun.training.objectives import VAEObjective

log = logging.getLogger("ganrun")

config.register()


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
    for change in config.rebase(resumed, ckpt.get("cwd")):
        log.info("resume: %s", change)
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


def run(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Validate, build and train one run into run_dir (continuing cfg.resume when set, with the checkpoint's
    own config but for the keys a run may change midway); returns its summary. `overrides`: what the run
    was composed from, kept in its checkpoints for resume=."""
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
    exp, callbacks = build(cfg, ckpt), build_callbacks(cfg)
    if ckpt is not None:
        check_resumable(cfg, ckpt, exp.data.shape)
        log_resumed(exp, ckpt, cfg.train.steps)
    if ranks.active:
        if cfg.train.sync_bn:
            exp.G, exp.D = (distributed.sync_batchnorm(m, exp.device) for m in (exp.G, exp.D))
        for module in (exp.G, exp.D):
            distributed.broadcast_module(module)
    log_start(cfg, exp, run_dir)
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    plain["model"] = exp.model  # model.conditional as built
    # only rank 0 logs; a resumed run continues the checkpoint's tracker runs
    writer = open_writer(cfg, run_dir, plain, ckpt) if ranks.main else NullWriter()
    overrides = list(overrides or [])
    summary: dict[str, Any] = {"status": "failed", "run_dir": str(run_dir), "overrides": overrides}
    if exp.data.skipped:  # unreadable image files, by name
        summary["skipped_files"] = list(exp.data.skipped)
    try:
        callbacks = set_up(callbacks, Run(exp, run_dir, writer, first_step(ckpt), cfg.train.steps, ranks, plain,
                                          overrides, sampler=exp.G))
        summary.update(fit(exp, cfg.train.steps, callbacks, resume=ckpt))
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
    log_end(summary, run_dir)
    return summary


def set_up(callbacks: list[Callback], run: Run) -> list[Callback]:
    """The callbacks this rank runs (rank 0 only for `main_only` ones, and the trackers' run ids before the
    checkpoints), each set up for the run, in order."""
    if run.ranks.main:
        at = next((i for i, c in enumerate(callbacks) if c.last), len(callbacks))
        callbacks = [*callbacks[:at], TrackerRuns(run.writer), *callbacks[at:]]
    callbacks = [c for c in callbacks if run.ranks.main or not c.main_only]
    run.callbacks = callbacks
    for c in callbacks:
        c.setup(run)
    return callbacks


def open_writer(cfg: DictConfig, run_dir: Path, plain: dict[str, Any], ckpt: dict[str, Any] | None) -> Any:
    """The trackers picked in cfg.logger, built from their nodes and started for the run."""
    built = {str(name): instantiate(node, f"logger.{name}") for name, node in (cfg.get("logger") or {}).items()}
    return trackers.open_trackers(built, run_dir, config.flat_items(plain), ckpt)


def log_start(cfg: DictConfig, exp: Any, run_dir: Path) -> None:
    n_g, n_d = (sum(p.numel() for p in m.parameters()) for m in (exp.G, exp.D))
    vae = isinstance(exp.objective, VAEObjective)  # model=vae: decoder in G's place, encoder in D's
    log.info("data %s %s, %s %s params, %s %s params, loss %s, device %s -> %s", exp.data.name,
             tuple(exp.data.shape), "decoder" if vae else "G", f"{n_g:,}", "encoder" if vae else "D", f"{n_d:,}",
             "ELBO (model=vae)" if vae else cfg.loss._target_.rsplit(".", 1)[-1], exp.device, run_dir)


def log_resumed(exp: Any, ckpt: dict[str, Any], steps: int) -> None:
    """A resumed run's one line: the steps it continues, and what the run's auto keys settled to when it
    began (kept in its checkpoint, so model.conditional's, model.width's and mode seeking's own start-up
    lines do not come again)."""
    settled = [f"model.{key}={str(exp.model[key]).lower()}" for key in ("conditional", "width") if key in exp.model]
    if exp.data.pseudo:
        settled.append(f"train.clusters={exp.data.n_classes}")
    weight, until = exp.mode_seeking
    if weight:
        settled.append(f"train.mode_seeking={weight:g}" + (f" to step {until}" if until else ""))
    if exp.aux_classifier:
        settled.append(f"train.aux_classifier={exp.aux_classifier:g}")
    log.info("resume: steps %d to %d of the run as it was built%s", ckpt["step"] + 1, steps,
             f" ({', '.join(settled)})" if settled else "")


def log_end(summary: dict[str, Any], run_dir: Path) -> None:
    losses = ", ".join(f"{k} {v:.4f}" for k, v in summary["losses"].items() if k != "loss/penalty")
    log.info("done: %d steps in %.1f s; %s; samples in %s", summary["step"], summary["wall_time_s"], losses,
             run_dir / "samples")
    if summary.get("metrics"):  # the final scores, each distance beside real data's own
        space = (summary.get("metric_settings") or {}).get("feature_space")
        log.info("metrics%s: %s", f" (features: {space})" if space else "",
                 ", ".join(f"{k} {metric_cell(summary, k)}" for k in sorted(summary["metrics"])))


def error_text(error: BaseException) -> str:
    """What stopped a run, for its summary: a user error's own line, anything else with its type."""
    return str(error) if isinstance(error, (UserError, NonFiniteError)) else f"{type(error).__name__}: {error}"


