"""Experiment trackers side by side: TensorBoard, Weights & Biases, MLflow (`logger=[tensorboard,wandb]`).

The callbacks write through one `writer` (add_scalar, add_image, add_hparams, flush, close). `Trackers` is
that writer: it hands each call to every tracker picked in `cfg.logger`, so neither the loop nor the
callbacks know which ones run. Each tracker gets TensorBoard's tags at TensorBoard's steps, the sample
grids as images, the final losses and metrics (as `hparams/...`) and, where it keeps parameters, the
resolved config as flat `a.b.c` keys. Only rank 0 opens trackers (the others get train.NullWriter).
The trackers' run ids go into every checkpoint, so `resume=` continues the same wandb / MLflow runs.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ganrun import images
from ganrun.callbacks import Callback
from ganrun.config import flat_items
from ganrun.errors import ConfigError

log = logging.getLogger(__name__)

PACKAGES = {"wandb": "wandb", "mlflow": "mlflow"}  # tracker -> the module it needs (its pip extra has the same name)


def check_installed(names: list[str]) -> None:
    """A picked tracker whose package is missing: one line saying what to install (config validation calls it)."""
    for name in names:
        module = PACKAGES.get(name)
        if module is None:
            continue
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - a broken install can raise anything while importing
            missing = isinstance(e, ImportError) and e.name == module
            broken = "" if missing else f" (it is there but importing it failed: {type(e).__name__}: {e})"
            raise ConfigError(f"logger={name} needs the {module} package: "
                              f"pip install 'ganrun[{name}]'{broken}") from None


class Tracker(Protocol):
    """One experiment tracker: what `Trackers` hands every call to."""

    run_id: str | None  # the tracker's own run, continued on resume (None: nothing to continue)

    def add_scalar(self, tag: str, value: float, step: int) -> None: ...
    def add_image(self, tag: str, image: Tensor, step: int) -> None: ...  # (C, H, W) in [0, 1]
    def add_hparams(self, params: dict[str, Any], metrics: dict[str, float], run_name: str | None = None,
                    global_step: int | None = None) -> None: ...
    def flush(self) -> None: ...
    def close(self, status: str) -> None: ...  # status: completed, interrupted or failed


def flat_params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as {"model.hidden": [16, 16], ...}: nested keys joined by dots, lists kept whole."""
    return flat_items(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))  # type: ignore[arg-type]


def default_run_name(run_dir: Path) -> str:
    """A tracker run's name when none is set: the run folder, relative to the current one when inside it."""
    path = run_dir.absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class TensorBoard:
    """Event files in the run folder; on resume the points after the checkpoint's step are dropped, so a
    resumed run has no duplicated steps."""

    run_id = None

    def __init__(self, node: DictConfig, run_dir: Path, params: dict[str, Any], resume: dict[str, Any] | None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir), purge_step=resume["step"] + 1 if resume else None)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def add_image(self, tag: str, image: Tensor, step: int) -> None:
        self.writer.add_image(tag, image, step)

    def add_hparams(self, params: dict[str, Any], metrics: dict[str, float], run_name: str | None = None,
                    global_step: int | None = None) -> None:
        self.writer.add_hparams(params, metrics, run_name=run_name, global_step=global_step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


def wandb_init_args(node: DictConfig, run_dir: Path, run_id: str | None) -> dict[str, Any]:
    """wandb.init's arguments for logger.wandb; other null keys are left out, for wandb to decide. The mode
    and folder are read from $WANDB_MODE / $WANDB_DIR here, because wandb reads its variables only once per
    process (a second run in the same process would miss a change)."""
    out_dir = node.dir or os.environ.get("WANDB_DIR") or str(run_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    args = {"project": node.project, "entity": node.entity, "name": node.name or default_run_name(run_dir),
            "group": node.group, "tags": list(node.tags) or None, "mode": node.mode or os.environ.get("WANDB_MODE"),
            "dir": out_dir}
    if run_id:
        args.update(id=run_id, resume="allow")  # the checkpoint's run, continued
    return {k: v for k, v in args.items() if v is not None}


class Wandb:
    """A Weights & Biases run: scalars with their step, sample grids as images, the final numbers in the
    run's summary, the resolved config as its config."""

    def __init__(self, node: DictConfig, run_dir: Path, params: dict[str, Any], resume: dict[str, Any] | None):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(**wandb_init_args(node, run_dir, (resume or {}).get("trackers", {}).get("wandb")))
        self.run.config.update(params, allow_val_change=True)  # a resumed run may have raised train.steps
        self.run_id: str | None = self.run.id
        log.info("wandb: run %s (%s) in %s", self.run.id, self.run.settings.mode, self.run.dir)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.run.log({tag: value}, step=step)

    def add_image(self, tag: str, image: Tensor, step: int) -> None:
        self.run.log({tag: self.wandb.Image(images.to_uint8(image), caption=f"step {step}")}, step=step)

    def add_hparams(self, params: dict[str, Any], metrics: dict[str, float], run_name: str | None = None,
                    global_step: int | None = None) -> None:
        self.run.summary.update(metrics)  # the config went in at the start

    def flush(self) -> None:
        """wandb sends in the background; nothing to do."""

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "completed" else 1)


MLFLOW_STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}


def mlflow_key(tag: str) -> str:
    """A tag as an MLflow metric name, which allows letters, digits and `_-. /` only: D(G(z)) -> D_G_z."""
    return re.sub(r"[^\w\-. /]+", "_", tag).strip("_") or "_"


class Mlflow:
    """An MLflow run: metrics with their step (one request per logged step), sample grids as artifacts
    samples/step_NNNNNN.png, the final numbers as metrics at the last step, the resolved config as params."""

    def __init__(self, node: DictConfig, run_dir: Path, params: dict[str, Any], resume: dict[str, Any] | None):
        from mlflow import MlflowClient

        self.client = MlflowClient(node.tracking_uri)  # None: $MLFLOW_TRACKING_URI, else MLflow's default
        self.run_id: str | None = (resume or {}).get("trackers", {}).get("mlflow")
        if self.run_id:
            self.client.update_run(self.run_id, status="RUNNING")
            logged = self.client.get_run(self.run_id).data.params
        else:
            exp = self.client.get_experiment_by_name(node.experiment)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(node.experiment)
            name = node.run_name or default_run_name(run_dir)
            self.run_id = self.client.create_run(exp_id, run_name=name).info.run_id
            logged = {}
        self.log_params(params, logged)
        self.pending: list[Any] = []
        log.info("mlflow: run %s in %s", self.run_id, self.client.tracking_uri)

    def log_params(self, params: dict[str, Any], logged: dict[str, str]) -> None:
        """The config as params. MLflow keeps a param's first value, so a resumed run adds only new keys
        and names the ones that changed."""
        from mlflow.entities import Param

        text = {k: str(v)[:6000] for k, v in params.items()}  # MLflow's longest param value
        changed = sorted(k for k, v in text.items() if k in logged and logged[k] != v)
        if changed:
            log.warning("mlflow: params keep their first values; changed on resume: %s", ", ".join(changed))
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in text.items() if k not in logged])

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        if self.pending and self.pending[-1].step != step:
            self.flush()
        self.pending.append(Metric(mlflow_key(tag), float(value), int(time.time() * 1000), step))

    def add_image(self, tag: str, image: Tensor, step: int) -> None:
        self.client.log_image(self.run_id, images.to_uint8(image), artifact_file=f"{tag}/step_{step:06d}.png")

    def add_hparams(self, params: dict[str, Any], metrics: dict[str, float], run_name: str | None = None,
                    global_step: int | None = None) -> None:
        for key, value in metrics.items():
            self.add_scalar(key, value, global_step or 0)
        self.flush()

    def flush(self) -> None:
        if self.pending:
            self.client.log_batch(self.run_id, metrics=self.pending)
            self.pending = []

    def close(self, status: str) -> None:
        self.flush()
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FAILED"))


TRACKERS = {"tensorboard": TensorBoard, "wandb": Wandb, "mlflow": Mlflow}


class Trackers(Callback):
    """The run's writer: every call goes to each tracker in turn. As a callback it puts the trackers' run
    ids into each checkpoint (and summary.json), so a resumed run continues them."""

    main_only = True

    def __init__(self, trackers: dict[str, Tracker]):
        self.named = trackers
        self.trackers = list(trackers.values())

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        for t in self.trackers:
            t.add_scalar(tag, value, step)

    def add_image(self, tag: str, image: Tensor, step: int) -> None:
        for t in self.trackers:
            t.add_image(tag, image, step)

    def add_hparams(self, params: dict[str, Any], metrics: dict[str, float], run_name: str | None = None,
                    global_step: int | None = None) -> None:
        for t in self.trackers:
            t.add_hparams(params, metrics, run_name=run_name, global_step=global_step)

    def flush(self) -> None:
        for t in self.trackers:
            t.flush()

    def close(self, status: str = "completed") -> None:
        """Close every tracker, even when one fails. A completed run raises the first failure after; a
        failed or interrupted one only logs it, so its own error is the one reported."""
        error: BaseException | None = None
        for name, t in self.named.items():
            try:
                t.close(status)
            except Exception as e:  # noqa: BLE001 - the others still get closed
                log.error("%s: closing its run failed: %s", name, e)
                error = error or e
        if error is not None and status == "completed":
            raise error

    def run_ids(self) -> dict[str, str]:
        return {name: t.run_id for name, t in self.named.items() if t.run_id}

    def save(self, ckpt: dict[str, Any]) -> None:
        ckpt["trackers"] = self.run_ids()

    def summary(self) -> dict[str, Any]:
        ids = self.run_ids()
        return {"trackers": ids} if ids else {}


def open_trackers(cfg: DictConfig, run_dir: Path, resume: dict[str, Any] | None = None) -> Trackers:
    """Start the trackers picked in cfg.logger for a run in run_dir (continuing the runs named in the
    checkpoint `resume`); a tracker that cannot start closes the ones already open and stops the run."""
    params = flat_params(cfg)
    opened: dict[str, Tracker] = {}
    for name, node in (cfg.get("logger") or {}).items():
        try:
            opened[str(name)] = TRACKERS[str(name)](node, run_dir, params, resume)
        except Exception as e:
            Trackers(opened).close("failed")
            if isinstance(e, ConfigError):
                raise
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            reason = reason if len(reason) <= 300 else reason[:300] + "..."
            raise ConfigError(f"logger={name}: could not start a run ({reason}); check logger.{name}.*") from e
    return Trackers(opened)
