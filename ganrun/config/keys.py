"""Helpers on config keys: flattening a config to dotted keys, the key an override sets, the closest
known name to a misspelt one, and which keys a resumed run may change."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from ganrun.config.schema import RESUME_MAY_CHANGE
from ganrun.errors import ConfigError  # noqa: F401  (re-exported: the config checks raise it)


def flat_items(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict's leaves by dotted path: {"model.hidden": [16, 16], ...} (lists and empty dicts kept whole)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat_items(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def override_key(override: str) -> str:
    """The key a command-line override sets: `+train.foo=1` -> train.foo, `logger=[a,b]` -> logger."""
    return override.split("=", 1)[0].lstrip("+~")


def may_change_on_resume(key: str) -> bool:
    """Whether `key` may be set beside resume= (itself or a key below one of RESUME_MAY_CHANGE)."""
    return any(key == k or key.startswith(k + ".") for k in RESUME_MAY_CHANGE)


def closest(name: str, candidates: Any) -> str:
    """"; did you mean X?" for the candidate nearest to a misspelt name, or "" when none is near."""
    import difflib

    match = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def unknown_keys(node: DictConfig, known: set[str]) -> list[str]:
    """The keys of `node` outside `known`, sorted (Hydra's `+` adds keys a schema does not have)."""
    return sorted(str(k) for k in node if k not in known)


