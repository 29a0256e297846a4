"""Composing `ganrun train`'s config with Hydra from the shipped config files, and turning Hydra's message
for a bad override into one line in ganrun's form (what was wrong, the closest name, what exists)."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from ganrun.config.keys import closest, override_key
from ganrun.config.schema import GROUPS, RENAMED, Config
from ganrun.errors import ConfigError  # noqa: F401  (re-exported: the config checks raise it)


def run_folder(name: str) -> str:
    """The run folder below outputs/ (train.yaml's hydra.run.dir): DATE/TIME, or NAME/DATE_TIME for a named run."""
    import datetime

    now = datetime.datetime.now()
    if not name:
        return now.strftime("%Y-%m-%d/%H-%M-%S")
    return f"{name}/{now:%Y-%m-%d_%H-%M-%S}"  # `validate` has checked the name


def register() -> None:
    """Put the schema into Hydra's ConfigStore (train.yaml lists it first in its defaults) and the run-folder
    resolver train.yaml's hydra.run.dir uses."""
    store = ConfigStore.instance()
    store.store(name="ganrun_schema", node=Config)
    if not OmegaConf.has_resolver("ganrun_run_folder"):
        OmegaConf.register_new_resolver("ganrun_run_folder", run_folder, use_cache=True)


def option_files(group: str) -> list[str]:
    """The options of a config group: configs/GROUP/*.yaml."""
    from importlib import resources

    folder = resources.files("ganrun.configs").joinpath(group)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def compose(overrides: list[str], hydra_node: bool = False) -> DictConfig:
    """The train config `ganrun train OVERRIDES` composes (with Hydra's own node when asked); a bad override
    is a ConfigError in one line that names it, suggests the closest group, option or key, and lists them."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
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
    unread = re.match(r"(\w+Exception): (.+?); \^", message)  # Hydra's grammar: key=a#b, key=a~b
    if unread:
        return (f"{unread[2]}: Hydra cannot read this override ({unread[1]}); quote a value that holds "
                f"characters such as ~ # = ( ), e.g. 'dataset.root=\"my pictures/\"'")
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


SAME_ROLE = {"root": "path", "path": "root"}  # where a set's files are: dataset=folder's root, zip's and hf's path


def unknown_key_text(key: str, overrides: list[str]) -> str:
    """`KEY: unknown key; did you mean X? (where keys: ...)`, from the config the other overrides compose."""
    if key in RENAMED:
        return f"{key} is not a ganrun key; use {RENAMED[key]}"
    parent, _, leaf = key.rpartition(".")
    others = [o for o in overrides if override_key(o) != key]
    try:
        cfg = compose(others)
    except ConfigError:
        return f"{key}: unknown key"
    for group in ("logger", "regularizers", "callbacks"):  # a list-valued group's option that is not picked
        if key.startswith(group + "."):
            name = key.split(".")[1]
            if name not in cfg.get(group, {}) and name in option_files(group):
                example = "logger=[tensorboard,NAME]" if group == "logger" else f"{group}=[NAME]"
                return f"{group}.{name} is set but {name} is not picked; add it: {example.replace('NAME', name)}"
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return f"{key}: unknown key"
    known = [str(k) for k in node if not str(k).startswith("_")]
    if not parent:  # the top level: groups are picked with group=option
        known = sorted(set(known) | set(GROUPS))
    near = closest(leaf, known).replace("mean ", f"mean {parent + '.' if parent else ''}")
    if not near and parent == "dataset" and SAME_ROLE.get(leaf) in known:  # folder's root is zip's path
        near = f"; did you mean dataset.{SAME_ROLE[leaf]}?"
    where = f"{parent} keys" if parent else "groups and top-level keys"
    return f"{key}: unknown key{near} ({where}: {', '.join(sorted(known))})"
