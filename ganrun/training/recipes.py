"""train.recipe=auto: a measured set of keys that a run takes where its data and hardware are what the set was
measured on, for the keys the command line left unset. One so far: configs/experiment/colour32.yaml, taken by
a GAN conditioned on clusters of colour images at 32 px on a CPU that computes bfloat16 in hardware (there it
scored an FD 1.6x lower than the plain default in about the same time on two emoji sets, 3 seeds each;
docs/results.md). Everywhere else the keys stay as shipped."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from ganrun.config.keys import override_key
from ganrun.data import Dataset
from ganrun.training.precision import native_bf16_cpu

log = logging.getLogger(__name__)

RECIPES = ("auto", "off")  # train.recipe
COLOUR32 = "experiment/colour32.yaml"  # the recipe's keys, also `experiment=colour32` on its own
NOT_TAKEN = ("model.conditional",)  # colour32.yaml's key that auto leaves alone: it applies only without labels


def recipe_keys(name: str = COLOUR32) -> dict[str, Any]:
    """The keys a recipe file sets, flat (`train.steps` -> 7000), less those auto never takes (NOT_TAKEN)."""
    text = resources.files("ganrun.configs").joinpath(name).read_text()
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif f"{prefix}{key}" not in NOT_TAKEN:
                flat[f"{prefix}{key}"] = value

    walk(OmegaConf.to_container(OmegaConf.create(text)), "")
    return flat


def fits_colour32(cfg: DictConfig, data: Dataset, on_clusters: bool) -> str:
    """Why the colour recipe does not fit this run ("" when it does): it was measured on the non-saturating
    DCGAN with Adam, conditioned on clusters of colour images at 32 px."""
    if not on_clusters:
        return "G is not conditioned on clusters of the images"
    if not (data.pixels and data.shape[0] >= 3 and tuple(data.shape[1:]) == (32, 32)):
        return "the images are not colour at 32 px"
    if not (str(cfg.model.get("_target_", "")).endswith("dcgan.make")
            and str(cfg.loss.get("_target_", "")).endswith("NonSaturating")
            and str(cfg.optimizer.get("_target_", "")).endswith("Adam")):
        return "the model, loss or optimizer is not the default's"
    return ""


def settle_recipe(cfg: DictConfig, data: Dataset, on_clusters: bool, device_type: str,
                  given: Sequence[str] | None, cpuinfo: str = "/proc/cpuinfo") -> dict[str, Any]:
    """train.recipe=auto: put the colour recipe's keys into cfg where it fits (fits_colour32) and the CPU computes
    bfloat16 in hardware, each key only where the command line did not set it (`given`: its overrides; None, as
    from Python without them, or an `experiment=` among them: the recipe is not taken). Said in one line;
    returns the keys set. A resumed run's config is its checkpoint's, already settled: not called for it."""
    if cfg.train.recipe == "off" or given is None or any(override_key(o) == "experiment" for o in given):
        return {}
    if fits_colour32(cfg, data, on_clusters):
        return {}
    named = {override_key(o) for o in given}
    flag = native_bf16_cpu(cpuinfo) if device_type == "cpu" else ""
    why = (f"train.precision={cfg.train.precision} as given" if "train.precision" in named
           and cfg.train.precision not in ("auto", "bf16") else
           f"it was not measured on {device_type}" if device_type != "cpu" else
           "this CPU does not compute bfloat16 in hardware" if not flag else "")
    if why:
        log.info("train.recipe=auto: the colour recipe (experiment=colour32) is not taken: %s, and its 7,000 steps "
                 "fit the default's time only in bfloat16 on a CPU that computes it", why)
        return {}
    keys = {k: v for k, v in recipe_keys().items() if k not in named}
    for key, value in keys.items():
        OmegaConf.update(cfg, key, value, merge=False)
    kept = sorted(set(recipe_keys()) - set(keys))
    log.info("train.recipe=auto: %s is colour images at 32 px with G conditioned on their clusters, and this CPU "
             "computes bfloat16 in hardware (%s), so the run takes the colour recipe: %s%s (train.recipe=off for the "
             "keys as shipped)", data.name, flag, " ".join(f"{k}={v}" for k, v in keys.items()),
             f"; {', '.join(kept)} as given" if kept else "")
    return keys
