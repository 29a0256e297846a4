"""The checks of a composed train config before any work starts (`validate`), the rules of a resumed
run's config, and reading the other subcommands' key=value arguments (`parse_key_values`). `dataset`,
`model` and `loss` nodes are checked against their targets' signatures (ganrun.config.targets)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ganrun.config.keys import closest, flat_items, may_change_on_resume, override_key, unknown_keys
from ganrun.config.schema import (
    AUGMENTATIONS,
    LR_SCHEDULES,
    ON_NAN,
    PRECISIONS,
    RENAMED,
    RESUME_MAY_CHANGE,
    Config,
    OptimizerConfig,
    TrainConfig,
)
from ganrun.config.targets import allow_plugins, check_node, instantiate, resolve_target
from ganrun.errors import ConfigError  # noqa: F401  (re-exported: the config checks raise it)


def check_name(name: str) -> None:
    import re

    if name and (not re.fullmatch(r"[\w.+-]+(/[\w.+-]+)*", str(name)) or ".." in str(name)):
        raise ConfigError(f"name={name!r}: use letters, digits, . _ + - (and / for sub-folders), e.g. name=wgan-test")


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
    keys a run may change (and the callbacks, whose settings follow train.*) taken from `now`. Also the keys where `now` differs from `saved` otherwise
    (the config files changed since the run began: the run keeps its own values)."""
    cfg = OmegaConf.merge(OmegaConf.structured(Config),
                          {k: v for k, v in saved.items() if k not in ("logger", "callbacks")})
    cfg.logger = now.logger
    cfg.callbacks = now.callbacks  # unresolved: the built-in ones read train.*, as the run's own now is
    for key in RESUME_MAY_CHANGE:
        if key != "logger":
            OmegaConf.update(cfg, key, OmegaConf.select(now, key), merge=False)
    mine = flat_items(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    theirs = flat_items(OmegaConf.to_container(now, resolve=True, enum_to_str=True))
    changed = sorted(k for k in set(mine) | set(theirs)  # `auto` (model.conditional) is settled when a run is built
                     if not may_change_on_resume(k) and k != "hydra" and theirs.get(k) != "auto"
                     and mine.get(k) != theirs.get(k))
    return cfg, changed


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
    if k == "auto":  # picks 0 wherever clusters do not fit (ganrun.training.build.cluster_count)
        return
    if isinstance(k, bool) or not isinstance(k, int) or k < 0 or k == 1:
        raise ConfigError(f"train.clusters={k}: use auto, 0 (off) or K >= 2 pseudo-classes, e.g. train.clusters=50")
    if not k:
        return
    if not has_discriminator(model):
        raise ConfigError(f"train.clusters={k} conditions a GAN's G and D; model=vae has no class input")
    if "conditional" not in model:
        raise ConfigError(f"train.clusters={k} needs a model with class inputs (model=dcgan, resnet or mlp)")
    if model.get("pack", 1) != 1:
        raise ConfigError(f"train.clusters={k} makes G and D conditional, which model.pack={model.pack} does not allow")


def check_weight(cfg: DictConfig, key: str, example: float) -> bool:
    """train.<key> is auto or a weight >= 0; whether it is a number."""
    w = cfg.train[key]
    if w == "auto":
        return False
    if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
        raise ConfigError(f"train.{key}={w}: use auto, 0 (off) or a weight > 0, e.g. train.{key}={example:g}")
    return True


def check_mode_seeking(cfg: DictConfig) -> None:
    """train.mode_seeking is auto or a weight >= 0, and the term is set in one place only."""
    w = cfg.train.mode_seeking
    if not check_weight(cfg, "mode_seeking", 0.2):
        return
    if "mode_seeking" in (cfg.get("regularizers") or {}):
        raise ConfigError(f"train.mode_seeking={w} and regularizers=[mode_seeking] set the same term twice; keep one "
                          f"(regularizers.mode_seeking.weight=W, or train.mode_seeking=W alone)")


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
    if t.augment != "auto" and (isinstance(t.augment, str) or not OmegaConf.is_list(t.augment)):
        raise ConfigError(f"train.augment={t.augment}: give a list of transforms, e.g. train.augment=[translation,color] "
                          f"([] for none), or auto")
    unknown = [p for p in t.augment if p not in AUGMENTATIONS] if t.augment != "auto" else []
    if unknown:
        raise ConfigError(f"train.augment: unknown transform {unknown[0]!r}; use any of {', '.join(AUGMENTATIONS)}")
    if not 0.0 <= t.ada_target < 1.0 or t.ada_kimg < 1:
        raise ConfigError(f"train.ada_target={t.ada_target}, train.ada_kimg={t.ada_kimg}: the target is in [0, 1) "
                          f"(0 turns ADA off; 0.6 is usual) and ada_kimg >= 1")
    if t.ada_target > 0 and t.augment != "auto" and not t.augment:
        raise ConfigError(f"train.ada_target={t.ada_target} adapts the probability of the train.augment transforms; "
                          f"name them, e.g. train.augment=[flip,translation,color,cutout]")
    check_clusters(cfg)
    check_mode_seeking(cfg)
    check_weight(cfg, "aux_classifier", 1.0)
    pack = cfg.model.get("pack", 1)
    if isinstance(pack, int) and pack > 1 and t.batch_size % pack:
        raise ConfigError(f"train.batch_size={t.batch_size} must be a multiple of model.pack={pack}")
    check_node(cfg.dataset, "dataset")
    check_node(cfg.model, "model", ("data_shape",))
    loss = check_node(cfg.loss, "loss")
    if t.drs:
        check_drs(loss, cfg.model)
    check_logger(cfg.get("logger") or {})
    for group in ("logger", "regularizers", "callbacks"):  # each a class built from its own settings: built now,
        for name, node in (cfg.get(group) or {}).items():  # so what its constructor refuses stops the run here
            instantiate(node, f"{group}.{name}")


def has_discriminator(model: Any) -> bool:
    """Whether a `model` node's factory builds a discriminator: a factory declares has_discriminator = False
    when its second network is something else (model=vae: an encoder)."""
    target = model.get("_target_")
    return getattr(resolve_target(target, "model"), "has_discriminator", True) if target else True


def check_drs(loss: Any, model: Any) -> None:
    """A ConfigError unless D's logit estimates log(p_data / p_g) (of a sample, or of a pack of them): a
    discriminator trained with a sigmoid GAN loss (`loss`: its class or an instance)."""
    if not has_discriminator(model):
        raise ConfigError("train.drs filters a GAN's samples with its D; model=vae has an encoder instead")
    if not getattr(loss, "probability", False):
        raise ConfigError(f"train.drs needs a sigmoid GAN loss (loss=gan or loss=minimax), whose D logit estimates "
                          f"log(p_data / p_g); {getattr(loss, '__name__', type(loss).__name__)} has no such D")


def check_installed(name: str, package: str | None) -> None:
    """A picked tracker whose package is missing: one line saying what to install (found without importing it)."""
    import importlib.util

    if package and importlib.util.find_spec(package) is None:
        raise ConfigError(f"logger={name} needs the {package} package: pip install 'ganrun[{name}]'")


def check_logger(logger: DictConfig) -> None:
    """Each node under `logger` is a tracker picked with logger=[...] (a `+logger.wandb.x=1` without wandb in
    the list is not), takes the keys its class takes, and has its package installed."""
    for name, node in logger.items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"logger.{name} is set but {name} is not picked; add it: logger=[tensorboard,{name}]")
        tracker = check_node(node, f"logger.{name}")
        check_installed(str(name), getattr(tracker, "package", None))
