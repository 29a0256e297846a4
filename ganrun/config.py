"""Typed configs: the schemas of `train`, `optimizer` and the top level, and the checks of a composed config.

`train` and `optimizer` have fixed schemas (dataclasses below), so Hydra itself rejects an unknown
key or a wrong type there while composing. `dataset`, `model` and `loss` nodes name a `_target_`,
checked against that target's signature by ganrun.targets. `validate` checks the whole config before
any work starts; `parse_key_values` reads the other subcommands' key=value arguments. Each tracker
under `logger` (logger=[tensorboard,wandb]) has a fixed schema too (`TRACKERS`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from ganrun.errors import ConfigError  # noqa: F401  (re-exported: the config checks raise it)
from ganrun.targets import allow_plugins, check_node, resolve_target

LR_SCHEDULES = ("constant", "linear", "cosine")
PRECISIONS = ("32", "bf16", "fp16")
ON_NAN = ("stop", "skip")
DEVICES = ("auto", "cpu", "cuda")
EXPORT_FORMATS = ("safetensors", "torchscript", "onnx")  # `ganrun export format=`
SAMPLE_MODES = ("sample", "interp")  # `ganrun sample mode=`


class Device(enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@dataclass
class TrainConfig:
    steps: int = 2000  # G updates
    batch_size: int = 64  # samples per D and G step
    n_critic: int = 1  # D updates per G update
    seed: int = 0  # seeds weights, data order, z and the preview noise
    device: Device = Device.auto  # auto (CUDA when there is one), cpu or cuda
    log_every: int = 50  # losses and stats to TensorBoard (the only host syncs)
    sample_every: int = 500  # sample grid from a fixed z
    eval_every: int = 0  # quality metrics to TensorBoard and the summary; 0: only at the end
    eval_n: int = 5000  # samples per evaluation of an image model (toy sets: always 2,500)
    ckpt_every: int = 1000  # checkpoints/step_NNNNNN.pt (last.pt is rewritten then too); 0: only at the end
    n_samples: int = 64  # images in each sample grid (the toy sets plot 2,500 points)
    augment: List[str] = field(default_factory=list)  # DiffAugment for D's inputs: color, translation, cutout, flip
    ada_target: float = 0.0  # adaptive augmentation: p follows E[sign D(real)] towards this (0.6 in the paper); 0: off
    ada_kimg: int = 100  # ADA: thousands of real images for p to move from 0 to 1
    precision: str = "32"  # 32, bf16 (autocast) or fp16 (autocast + a gradient scaler per network)
    compile: bool = False  # torch.compile G and D for the training step (falls back to eager if it fails)
    channels_last: bool = True  # conv models on CUDA use the channels-last memory layout
    sync_bn: bool = False  # torchrun on GPUs: BatchNorm statistics over all ranks' batches (SyncBatchNorm)
    lr_schedule: str = "constant"  # constant, or linear / cosine decay of both learning rates to 0 at train.steps
    ema: float = 0.0  # decay of an exponential moving average of G's weights (0: off); samples use it
    ema_rampup: float = 0.05  # EMA warm-up: its half-life is at most this share of the steps so far (0: off)
    drs: bool = False  # discriminator rejection sampling: D filters G's samples in metrics and `ganrun sample`
    clusters: int = 0  # self-conditioning: G and D conditioned on K equal-size k-means clusters of the data instead of labels (0: off)
    on_nan: str = "stop"  # stop: end the run naming the step and loss; skip: drop that update and go on
    progress: bool = True  # progress bar on a terminal (never when output is not a TTY)


@dataclass
class OptimizerConfig:
    """One schema for every optimizer; each class gets the keys its constructor takes, so a loss
    recipe's Adam betas do not break `optimizer=rmsprop` (RMSprop has no betas and ignores them)."""

    _target_: str = "torch.optim.Adam"
    lr_g: float = 2e-4  # G's learning rate (the loss's recipe sets it unless given)
    lr_d: float = 2e-4  # D's learning rate
    betas: Tuple[float, float] = (0.5, 0.999)  # Adam family
    alpha: float = 0.99  # RMSprop smoothing
    momentum: float = 0.0  # RMSprop, SGD
    eps: float = 1e-8  # added to the denominator (Adam, RMSprop)
    weight_decay: float = 0.0  # L2 penalty on both networks' weights
    fused: Optional[bool] = None  # Adam family: one fused kernel per step (null: on for CUDA, off on CPU)


@dataclass
class TensorBoardConfig:
    """logger=tensorboard: event files in the run folder; nothing to set."""


@dataclass
class WandbConfig:
    """logger=wandb (Weights & Biases). A null key leaves the choice to wandb (its WANDB_* variables)."""

    project: str = "ganrun"
    entity: Optional[str] = None  # a team or user; null: your default entity
    name: Optional[str] = None  # the run's display name; null: the run folder
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    mode: Optional[str] = None  # online, offline or disabled; null: $WANDB_MODE, else online
    dir: Optional[str] = None  # where wandb/ goes; null: $WANDB_DIR, else the run folder


@dataclass
class MlflowConfig:
    """logger=mlflow."""

    tracking_uri: Optional[str] = None  # null: $MLFLOW_TRACKING_URI, else MLflow's default store in the current folder
    experiment: str = "ganrun"  # the MLflow experiment the run is filed under
    run_name: Optional[str] = None  # the run's display name; null: the run folder


# logger=[a,b]: the schema of each tracker's node logger.<name> (configs/logger/<name>.yaml extends it)
TRACKERS: dict[str, type] = {"tensorboard": TensorBoardConfig, "wandb": WandbConfig, "mlflow": MlflowConfig}
WANDB_MODES = ("online", "offline", "disabled")


@dataclass
class Config:
    dataset: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    resume: str = ""  # a run folder or checkpoint to continue (its folder is reused unless hydra.run.dir is given)
    plugins: List[str] = field(default_factory=list)  # your own packages configs may name targets in, e.g. [mylab]
    logger: Dict[str, Any] = field(default_factory=dict)  # the trackers picked with logger=[...], one node each
    objective: str = "auto"  # what a sweeper (hydra/sweeper=optuna) gets back: a final metric or loss; auto: fd, energy on 2-D sets
    name: str = ""  # a run name: the run goes to outputs/NAME/DATE_TIME instead of outputs/DATE/TIME


def flat_items(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict's leaves by dotted path: {"model.hidden": [16, 16], ...} (lists and empty dicts kept whole)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat_items(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_folder(name: str) -> str:
    """The run folder below outputs/ (train.yaml's hydra.run.dir): DATE/TIME, or NAME/DATE_TIME for a named run."""
    import datetime

    now = datetime.datetime.now()
    if not name:
        return now.strftime("%Y-%m-%d/%H-%M-%S")
    return f"{name}/{now:%Y-%m-%d_%H-%M-%S}"  # `validate` has checked the name


def check_name(name: str) -> None:
    import re

    if name and (not re.fullmatch(r"[\w.+-]+(/[\w.+-]+)*", str(name)) or ".." in str(name)):
        raise ConfigError(f"name={name!r}: use letters, digits, . _ + - (and / for sub-folders), e.g. name=wgan-test")


def register() -> None:
    """Put the schema into Hydra's ConfigStore (train.yaml lists it first in its defaults) and the run-folder
    resolver train.yaml's hydra.run.dir uses."""
    store = ConfigStore.instance()
    store.store(name="ganrun_schema", node=Config)
    for tracker, schema in TRACKERS.items():
        store.store(group="logger_schema", name=tracker, node=schema)
    if not OmegaConf.has_resolver("ganrun_run_folder"):
        OmegaConf.register_new_resolver("ganrun_run_folder", run_folder, use_cache=True)


def parse_key_values(args: list[str], schema: type) -> Any:
    """`key=value` command-line arguments -> a `schema` dataclass instance; unknown keys, wrong types,
    a missing `ckpt` and n < 1 are ConfigErrors that list the keys."""
    from omegaconf.errors import OmegaConfBaseException

    keys = ", ".join(f.name for f in fields(schema))
    bad = [a for a in args if "=" not in a]
    if bad:
        raise ConfigError(f"expected key=value, got {bad[0]!r}; keys: {keys}")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(args))
    except OmegaConfBaseException as e:
        raise ConfigError(str(e).splitlines()[0] + f"; keys: {keys}") from None
    if OmegaConf.is_missing(cfg, "ckpt"):
        raise ConfigError("ckpt=PATH is required: a checkpoint file or a run folder")
    if "n" in cfg and cfg.n < 1:
        raise ConfigError(f"n={cfg.n}: must be >= 1")
    return OmegaConf.to_object(cfg)


# keys users reach for that live under another name (`+optimizer.lr=...` would otherwise be a new, unread key)
RENAMED = {"optimizer.lr": "optimizer.lr_g=X optimizer.lr_d=X (G's and D's learning rates)",
           "train.lr": "optimizer.lr_g=X optimizer.lr_d=X", "train.epochs": "train.steps=N (G updates)",
           "train.iterations": "train.steps=N (G updates)", "seed": "train.seed=N", "steps": "train.steps=N"}


# What a resumed run may change: when it stops, how often it logs, samples, scores and saves, where it runs
# and which trackers follow it. Everything else comes from the run's own checkpoint.
RESUME_MAY_CHANGE = ("train.steps", "train.log_every", "train.sample_every", "train.eval_every", "train.eval_n",
                     "train.ckpt_every", "train.n_samples", "train.device", "train.progress", "train.compile",
                     "train.channels_last", "train.on_nan", "logger", "objective", "resume")


def override_key(override: str) -> str:
    """The key a command-line override sets: `+train.foo=1` -> train.foo, `logger=[a,b]` -> logger."""
    return override.split("=", 1)[0].lstrip("+~")


def may_change_on_resume(key: str) -> bool:
    """Whether `key` may be set beside resume= (itself or a key below one of RESUME_MAY_CHANGE)."""
    return any(key == k or key.startswith(k + ".") for k in RESUME_MAY_CHANGE)


def check_resume_overrides(overrides: list[str]) -> None:
    """Beside resume=, only the keys a run may change midway; anything else is one ConfigError."""
    for override in overrides:
        key = override_key(override)
        if not may_change_on_resume(key):
            raise ConfigError(f"{key}: a resumed run keeps its own config, so {key} cannot change; beside resume= "
                              f"you may set {', '.join(k for k in RESUME_MAY_CHANGE if k != 'resume')} "
                              f"(or start a new run)")


def resumed_config(saved: dict[str, Any], now: DictConfig) -> tuple[DictConfig, list[str]]:
    """The config a resumed run trains with: the checkpoint's own (`saved`), typed by the schema, with the
    keys a run may change taken from `now`. Also the keys where `now` differs from `saved` otherwise
    (the config files changed since the run began: the run keeps its own values)."""
    cfg = OmegaConf.merge(OmegaConf.structured(Config), {k: v for k, v in saved.items() if k != "logger"})
    cfg.logger = now.logger
    for key in RESUME_MAY_CHANGE:
        if key != "logger":
            OmegaConf.update(cfg, key, OmegaConf.select(now, key), merge=False)
    mine = flat_items(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    theirs = flat_items(OmegaConf.to_container(now, resolve=True, enum_to_str=True))
    changed = sorted(k for k in set(mine) | set(theirs)  # `auto` (model.conditional) is settled when a run is built
                     if not may_change_on_resume(k) and k != "hydra" and theirs.get(k) != "auto"
                     and mine.get(k) != theirs.get(k))
    return cfg, changed


def closest(name: str, candidates: Any) -> str:
    """"; did you mean X?" for the candidate nearest to a misspelt name, or "" when none is near."""
    import difflib

    match = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def unknown_keys(node: DictConfig, known: set[str]) -> list[str]:
    """The keys of `node` outside `known`, sorted (Hydra's `+` adds keys a schema does not have)."""
    return sorted(str(k) for k in node if k not in known)


def check_known_keys(cfg: DictConfig) -> None:
    """A key added with `+` that nothing reads (`+foo=1`, `+train.foo=1`, `+optimizer.lr=1e-3`) stops the run:
    the top level, train and optimizer have fixed schemas, which Hydra's `+` bypasses."""
    for prefix, node, schema in (("", cfg, Config), ("train.", cfg.train, TrainConfig),
                                 ("optimizer.", cfg.optimizer, OptimizerConfig)):
        known = {f.name for f in fields(schema)} | ({"hydra"} if not prefix else set())
        for key in unknown_keys(node, known):
            name = prefix + key
            if name in RENAMED:
                raise ConfigError(f"{name} is not a ganrun key; use {RENAMED[name]}")
            near = closest(key, known - {"hydra"})
            raise ConfigError(f"{name}: unknown key, nothing would read it{near.replace('mean ', 'mean ' + prefix)} "
                              f"({prefix.rstrip('.') or 'top-level'} keys: {', '.join(sorted(known - {'hydra'}))})")


def check_clusters(cfg: DictConfig) -> None:
    """train.clusters=K needs a model that takes class labels; it sets what model.conditional=auto picks."""
    k, model = cfg.train.clusters, cfg.model
    if k < 0 or k == 1:
        raise ConfigError(f"train.clusters={k}: use 0 (off) or K >= 2 pseudo-classes, e.g. train.clusters=50")
    if not k:
        return
    if str(model.get("_target_", "")).endswith("vae.make"):
        raise ConfigError(f"train.clusters={k} conditions a GAN's G and D; model=vae has no class input")
    if model.get("conditional", "auto") is False:
        raise ConfigError(f"train.clusters={k} conditions G and D on the clusters; drop model.conditional=false")
    if "conditional" not in model:
        raise ConfigError(f"train.clusters={k} needs a model with class inputs (model=dcgan, resnet or mlp)")
    if model.get("pack", 1) != 1:
        raise ConfigError(f"train.clusters={k} makes G and D conditional, which model.pack={model.pack} does not allow")


def validate(cfg: DictConfig) -> None:
    """Check every part of a composed train config before any work starts."""
    check_known_keys(cfg)
    check_name(cfg.get("name", ""))
    allow_plugins(cfg.get("plugins") or [])
    t = cfg.train
    for key in ("steps", "batch_size", "n_critic", "log_every", "sample_every", "n_samples", "eval_n"):
        if t[key] < 1:
            raise ConfigError(f"train.{key}={t[key]}: must be >= 1")
    if not 0.0 <= t.ema < 1.0:
        raise ConfigError(f"train.ema={t.ema}: must be in [0, 1) (0 turns the EMA generator off; 0.999 is usual)")
    if t.ema_rampup < 0:
        raise ConfigError(f"train.ema_rampup={t.ema_rampup}: must be >= 0 (0 turns the warm-up off; 0.05 is usual)")
    if t.precision not in PRECISIONS:
        raise ConfigError(f"train.precision={t.precision!r}: use {', '.join(PRECISIONS)}")
    if t.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"train.lr_schedule={t.lr_schedule!r}: use {', '.join(LR_SCHEDULES)}")
    if t.on_nan not in ON_NAN:
        raise ConfigError(f"train.on_nan={t.on_nan!r}: use stop or skip")
    if t.eval_every < 0:
        raise ConfigError(f"train.eval_every={t.eval_every}: must be >= 0 (0 evaluates only at the end)")
    if t.ckpt_every < 0:
        raise ConfigError(f"train.ckpt_every={t.ckpt_every}: must be >= 0 (0 writes only the final checkpoint)")
    if cfg.optimizer.lr_g <= 0 or cfg.optimizer.lr_d <= 0:
        raise ConfigError(f"optimizer.lr_g={cfg.optimizer.lr_g}, optimizer.lr_d={cfg.optimizer.lr_d}: must be > 0")
    resolve_target(cfg.optimizer._target_, "optimizer")
    from ganrun.augment import POLICIES

    unknown = [p for p in t.augment if p not in POLICIES]
    if unknown:
        raise ConfigError(f"train.augment: unknown transform {unknown[0]!r}; use any of {', '.join(POLICIES)}")
    if not 0.0 <= t.ada_target < 1.0 or t.ada_kimg < 1:
        raise ConfigError(f"train.ada_target={t.ada_target}, train.ada_kimg={t.ada_kimg}: the target is in [0, 1) "
                          f"(0 turns ADA off; 0.6 is usual) and ada_kimg >= 1")
    if t.ada_target > 0 and not t.augment:
        raise ConfigError(f"train.ada_target={t.ada_target} adapts the probability of the train.augment transforms; "
                          f"name them, e.g. train.augment=[flip,translation,color,cutout]")
    check_clusters(cfg)
    pack = cfg.model.get("pack", 1)
    if isinstance(pack, int) and pack > 1 and t.batch_size % pack:
        raise ConfigError(f"train.batch_size={t.batch_size} must be a multiple of model.pack={pack}")
    check_node(cfg.dataset, "dataset")
    check_node(cfg.model, "model", ("data_shape",))
    loss = check_node(cfg.loss, "loss")
    if t.drs:
        from ganrun import rejection

        rejection.check(loss, cfg.model)
    check_logger(cfg.get("logger") or {})


def check_logger(logger: DictConfig) -> None:
    """Each node under `logger` is a tracker picked with logger=[...], holds only its schema's keys (`+` can
    add others) and has its package installed."""
    from ganrun import trackers

    for name, node in logger.items():
        schema = TRACKERS.get(str(name))
        if schema is None:
            raise ConfigError(f"logger.{name}: unknown tracker; use logger=[{','.join(TRACKERS)}] (any of them)")
        if OmegaConf.get_type(node) is not schema:  # `+logger.wandb.x=1` without wandb in logger=[...]
            raise ConfigError(f"logger.{name} is set but {name} is not picked; add it: logger=[tensorboard,{name}]")
        known = {f.name for f in fields(schema)}
        unknown = unknown_keys(node, known)
        if unknown:
            raise ConfigError(f"logger.{name}.{unknown[0]}: unknown key; {name} keys: "
                              f"{', '.join(sorted(known)) or 'none'}")
    if "wandb" in logger and logger.wandb.mode not in (None, *WANDB_MODES):
        raise ConfigError(f"logger.wandb.mode={logger.wandb.mode!r}: use {', '.join(WANDB_MODES)} "
                          f"(or null: $WANDB_MODE, else online)")
    trackers.check_installed(list(logger))



GROUPS = ("dataset", "model", "loss", "optimizer", "experiment", "logger")  # the config groups of `ganrun train`


def option_files(group: str) -> list[str]:
    """The options of a config group: configs/GROUP/*.yaml."""
    from importlib import resources

    folder = resources.files("ganrun.configs").joinpath(group)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def compose(overrides: list[str], hydra_node: bool = False) -> DictConfig:
    """The train config `ganrun train OVERRIDES` composes (with Hydra's own node when asked); a bad override
    is a ConfigError in one line that names it, suggests the closest group, option or key, and lists them."""
    from hydra import compose as hydra_compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register()
    try:
        with initialize_config_module(config_module="ganrun.configs", version_base="1.3"):
            return hydra_compose(config_name="train", overrides=list(overrides), return_hydra_config=hydra_node)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(explain(e, list(overrides))) from None


def explain(error: BaseException, overrides: list[str]) -> str:
    """Hydra's message for a bad override, as one line in ganrun's form: what was wrong and what would do."""
    import re

    from ganrun.errors import one_line

    message = one_line(error)
    option = re.search(r"Could not (?:find|load) '(\w+)/([^']*)'", message)  # loss=hingee, logger=[wandbb]
    if option:
        group, name = option[1], option[2]
        known = option_files(group)
        return f"{group}={name}: no such option{closest(name, known)} ({group} options: {', '.join(known)})"
    key = re.search(r"Could not override '([^']+)'", message)
    if key and ("not in" in message or "No match in the defaults list" in message):
        return unknown_key_text(key[1], overrides)
    merge = re.search(r"Error merging override (\S+?)=(\S*); (.*)", message)
    if merge:  # train.steps=abc: the value does not fit the key's type
        return f"{merge[1]}={merge[2]}: {merge[3]}"
    return message


def unknown_key_text(key: str, overrides: list[str]) -> str:
    """`KEY: unknown key; did you mean X? (where keys: ...)`, from the config the other overrides compose."""
    if key in RENAMED:
        return f"{key} is not a ganrun key; use {RENAMED[key]}"
    parent, _, leaf = key.rpartition(".")
    tracker = parent.split(".")[1] if parent.startswith("logger.") else (leaf if parent == "logger" else "")
    if tracker and tracker in TRACKERS:
        return f"logger.{tracker} is set but {tracker} is not picked; add it: logger=[tensorboard,{tracker}]"
    others = [o for o in overrides if override_key(o) != key]
    try:
        node = compose(others)
        node = OmegaConf.select(node, parent) if parent else node
    except ConfigError:
        node = None
    if not isinstance(node, DictConfig):
        return f"{key}: unknown key"
    known = [str(k) for k in node if not str(k).startswith("_")]
    if not parent:  # the top level: groups are picked with group=option
        known = sorted(set(known) | set(GROUPS))
    near = closest(leaf, known).replace("mean ", f"mean {parent + '.' if parent else ''}")
    where = f"{parent} keys" if parent else "groups and top-level keys"
    return f"{key}: unknown key{near} ({where}: {', '.join(sorted(known))})"
