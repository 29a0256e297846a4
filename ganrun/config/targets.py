"""Targets: the one checked way a config node becomes an object.

`dataset`, `model` and `loss` nodes name a `_target_`; their schema is that target's signature: `check_node`
refuses a key the target does not take or a value of the wrong type before any work starts, and
`instantiate` only builds allow-listed targets (ganrun, torch.optim, torch.nn and the user's own packages
named in `plugins`; never the standard library).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from typing import Any, Callable, Literal, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from ganrun.config.schema import RENAMED
from ganrun.errors import ConfigError, UserError

# Config-driven construction may only reach these modules (a config cannot name os.system), plus the
# user's own packages listed in the top-level `plugins` key (never the standard library).
ALLOWED_TARGET_PREFIXES = ("ganrun.", "torch.optim.", "torch.nn.")
_plugins: tuple[str, ...] = ()
# targets saved in checkpoints before the modules moved into packages, and where they live now
MOVED_TARGETS = {"ganrun.losses.": "ganrun.training.losses."}


def allow_plugins(packages: Sequence[str]) -> None:
    """Let configs name targets in these packages of the user's own (the `plugins` key); a standard-library
    module (os, subprocess, ...) is refused."""
    global _plugins
    prefixes = []
    for name in packages:
        top = str(name).strip().strip(".").split(".")[0]
        if not top or top in sys.stdlib_module_names or top in ("torch", "builtins"):
            raise ConfigError(f"plugins=[{name}]: give your own package (e.g. plugins=[mylab]); the standard "
                              f"library and torch itself cannot be plugins")
        prefixes.append(str(name).strip().strip(".") + ".")
    _plugins = tuple(prefixes)


def resolve_target(path: str, where: str) -> Callable[..., Any]:
    """Import an allow-listed `_target_` (ganrun, torch.optim, torch.nn, the plugins); else a ConfigError."""
    allowed = ALLOWED_TARGET_PREFIXES + _plugins
    if not isinstance(path, str) or not path.startswith(allowed):
        raise ConfigError(f"{where}._target_={path!r} is not allowed: targets must live in "
                          f"{', '.join(p.rstrip('.') for p in allowed)}; add your own package with plugins=[NAME]")
    path = next((new + path[len(old):] for old, new in MOVED_TARGETS.items() if path.startswith(old)), path)
    module_name, _, attr = path.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        raise ConfigError(f"{where}._target_={path!r}: no such class or function") from None
    if not callable(obj):
        raise ConfigError(f"{where}._target_={path!r} is not callable")
    return obj


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple) or getattr(origin, "__name__", "") == "Sequence":
        return "a list"
    return getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any) -> bool:
    """Whether a config value fits a constructor's type hint (the handful of kinds configs use)."""
    if tp is Any or tp is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple) or getattr(origin, "__name__", "") == "Sequence":
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, (list, tuple, ListConfig)) and all(_matches(v, args[0]) for v in value) if args \
            else isinstance(value, (list, tuple, ListConfig))
    return True  # anything fancier is left to the target itself


def check_node(node: DictConfig, where: str, supplied: tuple[str, ...] = ()) -> Callable[..., Any]:
    """Check a `_target_` node's keys and value types against the target's signature; return the target.

    `supplied` names the arguments the builder passes itself (e.g. the data shape), which a config may not set.
    """
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{where} needs a _target_ (pick an option of the `{where}` config group)")
    target = resolve_target(node._target_, where)
    params = {n: p for n, p in inspect.signature(target).parameters.items()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in supplied}
    hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    for key in node:
        if str(key).startswith("_"):
            continue
        if key not in params and f"{where}.{key}" in RENAMED:
            raise ConfigError(f"{where}.{key} is not a ganrun key; use {RENAMED[f'{where}.{key}']}")
        if key not in params:
            raise ConfigError(f"{where}.{key}: unknown key for {node._target_}; "
                              f"allowed keys: {', '.join(params) or '(none)'}")
        if OmegaConf.is_missing(node, key):  # `???` in the YAML: the user must give it
            raise ConfigError(f"{where}.{key} is required: add {where}.{key}=... to the command line")
        value = node[key]
        if key in hints and not _matches(value, hints[key]):
            raise ConfigError(f"{where}.{key}={value!r}: expected {_type_name(hints[key])}")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in node]
    if missing:
        raise ConfigError(f"{where}: {node._target_} needs {', '.join(f'{where}.{m}' for m in missing)}")
    return target


def instantiate(node: DictConfig, where: str, **supplied: Any) -> Any:
    """Check `node` (see check_node) and call its target with its keys plus `supplied`."""
    target = check_node(node, where, tuple(supplied))
    kwargs = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if not str(k).startswith("_")}
    try:
        return target(**kwargs, **supplied)
    except (ValueError, TypeError) as e:
        if isinstance(e, UserError):  # DataError, ConfigError: already one clear line
            raise
        raise ConfigError(str(e)) from e


def optimizer_kwargs(opt: Any, target: Callable[..., Any]) -> dict[str, Any]:
    """The optimizer keys `target`'s constructor takes (lr is set per network by the caller)."""
    accepted = inspect.signature(target).parameters
    values = OmegaConf.to_container(opt, resolve=True) if isinstance(opt, DictConfig) else vars(opt)
    kwargs = {k: v for k, v in values.items() if k in accepted and k not in ("lr", "params")}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(float(b) for b in kwargs["betas"])  # torch wants a tuple of floats
    return kwargs


