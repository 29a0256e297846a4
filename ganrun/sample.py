"""`ganrun sample ckpt=PATH n=64 out=grid.png seed=0`: render G's samples from a checkpoint alone."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import List, Optional
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from ganrun import checkpoint, images
from ganrun.build import build_models, pick_device
from ganrun.config import ConfigError, Device, parse_key_values
from ganrun.checkpoint import CheckpointError

SUFFIXES = (".png", ".npy")


@dataclass
class SampleConfig:
    ckpt: str = "???"  # a checkpoint file or a run folder (uses its checkpoints/last.pt)
    n: int = 64  # how many samples
    out: str = "samples.png"  # .png: an image grid (or scatter plot for 2-D points); .npy: the raw array
    seed: int = 0  # fixes z
    nrow: int = 0  # images per grid row; 0: near-square (conditional models: one class per row)
    classes: Optional[List[int]] = None  # conditional models: these classes, one per row (default: all, up to 10)
    device: Device = Device.auto


def parse(args: list[str]) -> SampleConfig:
    """key=value arguments -> a typed SampleConfig (unknown keys and wrong types are ConfigErrors)."""
    cfg = parse_key_values(args, SampleConfig)
    if Path(cfg.out).suffix.lower() not in SUFFIXES:
        raise ConfigError(f"out={cfg.out}: unsupported suffix; use one of {', '.join(SUFFIXES)}")
    return cfg


def load_generator(ckpt: dict, device: torch.device) -> torch.nn.Module:
    """G rebuilt from the checkpoint's own model config, with its EMA weights when it has them, in eval mode."""
    G, _ = build_models(OmegaConf.create(ckpt["config"]["model"]), tuple(ckpt["data"]["shape"]),
                        ckpt["data"].get("n_classes", 0))
    state = ckpt.get("G_ema", ckpt["G"])
    mismatch = checkpoint.first_mismatch(G, state)
    if mismatch:
        raise CheckpointError(f"the checkpoint's G weights do not fit its model config ({ckpt['config']['model']['_target_']}): "
                              f"{mismatch}")
    G.load_state_dict(state)
    return G.to(device).eval()


@torch.no_grad()
def generate(ckpt: dict, n: int, seed: int, device: torch.device,
             classes: list[int] | None = None) -> tuple[torch.Tensor, int]:
    """Samples from the checkpoint's G (see load_generator) for z drawn with `seed` on the CPU, and
    the grid row length that fits them: n samples, or for a conditional G one row per class of
    `classes` (n // rows each)."""
    G = load_generator(ckpt, device)
    n_classes = getattr(G, "n_classes", 0)
    if classes is not None:
        if not n_classes:
            raise ConfigError("classes=...: this checkpoint's model is not conditional (train with model.conditional=true)")
        bad = [c for c in classes if not 0 <= c < n_classes]
        if bad or not classes:
            raise ConfigError(f"classes={list(classes)}: give class numbers from 0 to {n_classes - 1}")
    labels, nrow = images.class_rows(n_classes, n, classes)
    z = torch.randn(n if labels is None else len(labels), G.latent_dim, generator=torch.Generator().manual_seed(seed))
    x = G(z.to(device)) if labels is None else G(z.to(device), labels.to(device))
    return x.float().cpu(), nrow


def write(samples: torch.Tensor, kind: str, out: Path, nrow: int) -> None:
    """Save samples: .npy raw (images in [0, 1], points as is), .png grid or scatter plot."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        arr = samples if kind == "points" else images.to_unit(samples)
        np.save(out, arr.numpy().astype(np.float32))
    elif kind == "points":
        images.save_png(images.scatter(samples, title=f"{len(samples)} samples"), out)
    else:
        images.save_png(images.grid(samples, nrow), out)


def main(args: list[str]) -> int:
    """Entry point for `ganrun sample`; returns the exit code."""
    try:
        cfg = parse(args)
        device = pick_device(cfg.device.value)
        ckpt = checkpoint.load(cfg.ckpt)
        samples, nrow = generate(ckpt, cfg.n, cfg.seed, device, cfg.classes)
        write(samples, ckpt["data"]["kind"], Path(cfg.out), cfg.nrow or nrow)
    except (ConfigError, CheckpointError) as e:
        print(f"ganrun sample: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"ganrun sample: error: cannot write {cfg.out}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {len(samples)} samples to {cfg.out}")
    return 0
