"""Experiment trackers side by side: TensorBoard, Weights & Biases, MLflow (`logger=[tensorboard,wandb]`).

Each tracker is a class built from its config node (configs/logger/NAME.yaml: `_target_` and its own
settings) and started for a run with `start(run_dir, params, run_id)`. The callbacks write through one
`writer` (add_scalar, add_image, add_hparams, flush, close). `Trackers` is that writer: it hands each call
to every tracker picked, so neither the loop nor the callbacks know which ones run. Each tracker gets
TensorBoard's tags at TensorBoard's steps, the sample grids as images, the final losses and metrics (as
`hparams/...`) and, where it keeps parameters, the resolved config as flat `a.b.c` keys. The trackers' run
ids go into every checkpoint, so `resume=` continues the same wandb / MLflow runs. A new tracker is a
class with a `package` (the module it needs, or None), a YAML in configs/logger/ and a test.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any, List, Optional, Protocol

from torch import Tensor

from ganrun.data import pictures as images
from ganrun.errors import ConfigError

log = logging.getLogger(__name__)


class Tracker(Protocol):
    """One experiment tracker: what `Trackers` hands every call to, once started."""

    package: str | None  # the module it needs (its pip extra has the same name); None: none beyond ganrun's
    run_id: str | None  # the tracker's own run, continued on resume (None: nothing to continue)

    def start(self, run_dir: Path, params: dict[str, Any], run_id: str | None, step: int = 0) -> None: ...
    # step: a resumed checkpoint's (what was logged after it is dropped or overwritten), else 0
    def add_scalar(self, tag: str, value: float, step: int) -> None: ...
    def add_image(self, tag: str, image: Tensor, step: int) -> None: ...  # (C, H, W) in [0, 1]
    def add_hparams(self, params: dict[str, Any], metrics: dict[str, float], run_name: str | None = None,
                    global_step: int | None = None) -> None: ...
    def flush(self) -> None: ...
    def close(self, status: str) -> None: ...  # status: completed, interrupted or failed


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

    package = None
    run_id = None

    def start(self, run_dir: Path, params: dict[str, Any], run_id: str | None, step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir), purge_step=step + 1 if step else None)

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


WANDB_MODES = ("online", "offline", "disabled")


class Wandb:
    """A Weights & Biases run: scalars with their step, sample grids as images, the final numbers in the
    run's summary, the resolved config as its config. A null setting leaves the choice to wandb (its
    WANDB_* variables). What a step logs goes to wandb as one row, in one call, when the next step starts
    or the run flushes or ends."""

    package = "wandb"

    def __init__(self, project: str = "ganrun", entity: Optional[str] = None, name: Optional[str] = None,
                 group: Optional[str] = None, tags: List[str] = (), mode: Optional[str] = None,
                 dir: Optional[str] = None):
        if mode not in (None, *WANDB_MODES):
            raise ConfigError(f"logger.wandb.mode={mode!r}: use {', '.join(WANDB_MODES)} (or null: $WANDB_MODE, "
                              f"else online)")
        self.settings = {"project": project, "entity": entity, "name": name, "group": group, "tags": list(tags),
                         "mode": mode, "dir": dir}
        self.run_id: str | None = None
        self.row: dict[str, Any] = {}
        self.row_step: int | None = None

    def init_args(self, run_dir: Path, run_id: str | None) -> dict[str, Any]:
        """wandb.init's arguments; null settings are left out, for wandb to decide. The mode and folder are
        read from $WANDB_MODE / $WANDB_DIR here, because wandb reads its variables only once per process
        (a second run in the same process would miss a change)."""
        s = self.settings
        out_dir = s["dir"] or os.environ.get("WANDB_DIR") or str(run_dir)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        args = {"project": s["project"], "entity": s["entity"], "name": s["name"] or default_run_name(run_dir),
                "group": s["group"], "tags": s["tags"] or None, "mode": s["mode"] or os.environ.get("WANDB_MODE"),
                "dir": out_dir}
        if run_id:
            args.update(id=run_id, resume="allow")  # the checkpoint's run, continued
        return {k: v for k, v in args.items() if v is not None}

    def start(self, run_dir: Path, params: dict[str, Any], run_id: str | None, step: int = 0) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(**self.init_args(run_dir, run_id))
        self.run.config.update(params, allow_val_change=True)  # a resumed run may have raised train.steps
        self.run_id = self.run.id
        log.info("wandb: run %s (%s) in %s", self.run.id, self.run.settings.mode, self.run.dir)

    def add(self, step: int, entries: dict[str, Any]) -> None:
        if step != self.row_step:
            self.flush()
        self.row_step = step
        self.row.update(entries)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.add(step, {tag: value})

    def add_image(self, tag: str, image: Tensor, step: int) -> None:
        self.add(step, {tag: self.wandb.Image(images.to_uint8(image), caption=f"step {step}")})

    def add_hparams(self, params: dict[str, Any], metrics: dict[str, float], run_name: str | None = None,
                    global_step: int | None = None) -> None:
        self.flush()
        self.run.summary.update(metrics)  # the config went in at the start

    def flush(self) -> None:
        """The step's row to wandb (which sends in the background)."""
        if self.row:
            self.run.log(self.row, step=self.row_step)
        self.row = {}

    def close(self, status: str) -> None:
        self.flush()
        self.run.finish(exit_code=0 if status == "completed" else 1)


MLFLOW_STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}


def mlflow_key(tag: str) -> str:
    """A tag as an MLflow metric name, which allows letters, digits and `_-. /` only: D(G(z)) -> D_G_z."""
    return re.sub(r"[^\w\-. /]+", "_", tag).strip("_") or "_"


class Mlflow:
    """An MLflow run: metrics with their step (one request per logged step), sample grids as artifacts
    samples/step_NNNNNN.png, the final numbers as metrics at the last step, the resolved config as params."""

    package = "mlflow"

    def __init__(self, tracking_uri: Optional[str] = None, experiment: str = "ganrun", run_name: Optional[str] = None):
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.run_id: str | None = None
        self.pending: list[Any] = []

    def start(self, run_dir: Path, params: dict[str, Any], run_id: str | None, step: int = 0) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(self.tracking_uri)  # None: $MLFLOW_TRACKING_URI, else MLflow's default
        self.run_id = run_id
        if self.run_id:
            self.client.update_run(self.run_id, status="RUNNING")
            logged = self.client.get_run(self.run_id).data.params
        else:
            exp = self.client.get_experiment_by_name(self.experiment)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(self.experiment)
            name = self.run_name or default_run_name(run_dir)
            self.run_id = self.client.create_run(exp_id, run_name=name).info.run_id
            logged = {}
        self.log_params(params, logged)
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


class Trackers:
    """The run's writer: every call goes to each started tracker in turn."""

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


def open_trackers(trackers: dict[str, Tracker], run_dir: Path, params: dict[str, Any],
                  resume: dict[str, Any] | None = None) -> Trackers:
    """Start the trackers for a run in run_dir (continuing the runs named in the checkpoint `resume`,
    from its step); a tracker that cannot start closes the ones already open and stops the run."""
    ids, step = (resume or {}).get("trackers", {}), int((resume or {}).get("step", 0))
    opened: dict[str, Tracker] = {}
    for name, tracker in trackers.items():
        try:
            tracker.start(run_dir, params, ids.get(name), step)
            opened[name] = tracker
        except Exception as e:
            Trackers(opened).close("failed")
            if isinstance(e, ConfigError):
                raise
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            reason = reason if len(reason) <= 300 else reason[:300] + "..."
            raise ConfigError(f"logger={name}: could not start a run ({reason}); check logger.{name}.*") from e
    return Trackers(opened)
