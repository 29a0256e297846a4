"""A checkpoint's networks rebuilt from the config inside it: the one place `ganrun sample`, `eval` and
`export` (and the safetensors loader) turn saved weights back into modules."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import OmegaConf

from ganrun.artifacts import checkpoint
from ganrun.config.targets import allow_plugins
from ganrun.errors import CheckpointError, ConfigError
from ganrun.models.build import build_models


def pick_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; cuda without a GPU is a ConfigError."""
    name = getattr(name, "value", name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but torch sees no CUDA GPU; use train.device=auto or cpu")
    return torch.device(name)


def networks(model: dict[str, Any], data: dict[str, Any], plugins: list[str] | None = None) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(G, D) built from a saved model config and data description ({"shape", "n_classes"}), with the
    run's plugin prefixes allowed (a model class from the user's own package)."""
    allow_plugins(plugins or [])
    if model.get("conditional") and model.get("_target_") == "ganrun.models.dcgan.make" and "d_condition" not in model:
        model = {**model, "d_condition": "projection"}  # saved before model.d_condition existed
    return build_models(OmegaConf.create(model), tuple(data["shape"]), data.get("n_classes", 0), "clusters" in data,
                        data.get("class_of"))


def _networks(ckpt: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    return networks(ckpt["config"]["model"], ckpt["data"], ckpt["config"].get("plugins"))


def load_generator(ckpt: dict, device: torch.device, ema: bool | None = None) -> torch.nn.Module:
    """G rebuilt from the checkpoint's own model config, in eval mode, with its EMA weights when it
    has them (ema=None or True) or its raw weights (ema=False)."""
    G, _ = _networks(ckpt)
    if ema and "G_ema" not in ckpt:
        raise ConfigError("ema=true: this checkpoint has no EMA generator (train with train.ema=0.999)")
    state = ckpt["G_ema"] if "G_ema" in ckpt and ema is not False else ckpt["G"]
    mismatch = checkpoint.first_mismatch(G, state)
    if mismatch:
        raise CheckpointError(f"the checkpoint's G weights do not fit its model config ({ckpt['config']['model']['_target_']}): "
                              f"{mismatch}")
    G.load_state_dict(state)
    return G.to(device).eval()


def load_discriminator(ckpt: dict, device: torch.device) -> torch.nn.Module:
    """D rebuilt from the checkpoint's model config, in eval mode (without its DiffAugment wrapper)."""
    _, D = _networks(ckpt)
    state = ckpt["D"]
    if checkpoint.first_mismatch(D, state) and all(k.startswith("D.") for k in state):
        state = {k.removeprefix("D."): v for k, v in state.items()}  # saved as Augmented(D): keys under "D."
    mismatch = checkpoint.first_mismatch(D, state)
    if mismatch:
        raise CheckpointError(f"the checkpoint's D weights do not fit its model config: {mismatch}")
    D.load_state_dict(state)
    return D.to(device).eval()
