"""`ganrun eval ckpt=RUN` or `ganrun eval samples=PATH dataset=NAME`: the metrics of a checkpoint or of
saved samples (ganrun.metrics.evaluator), as a table beside real data's and as JSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ganrun.metrics.floor import versus_real
from ganrun.config import EvalConfig, parse_key_values, rebase
from ganrun.config.targets import instantiate
from ganrun.metrics import scores as metrics
from ganrun.metrics.evaluator import Evaluator

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_samples(path: str, shape: tuple[int, ...]) -> Tensor:
    """Images in [-1, 1] shaped like the dataset's (C, H, W) from an .npy (n, C, H, W) in [0, 1] (uint8 0-255
    also taken) or a folder of PNG/JPG files (converted to the dataset's channels, resized to its size)."""
    import numpy as np
    from PIL import Image

    from ganrun.config import ConfigError

    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"samples={path}: no .png/.jpg files in this folder")
        mode = "L" if shape[0] == 1 else "RGB"
        arrays = [np.asarray(Image.open(f).convert(mode).resize(shape[:0:-1], Image.BILINEAR)) for f in files]
        x = torch.from_numpy(np.stack(arrays)).float().div(255)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    elif p.suffix.lower() == ".npy" and p.is_file():
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as e:
            raise ConfigError(f"samples={path}: not a plain .npy array ({e})") from None
        x = torch.from_numpy(arr.astype(np.float32) / (255 if arr.dtype == np.uint8 else 1))
        x = x.unsqueeze(1) if x.dim() == 3 else x
    else:
        raise ConfigError(f"samples={path}: give an .npy file or a folder of PNG/JPG images that exists")
    if x.dim() == 4 and x.shape[1] == shape[0] and x.shape[2] == x.shape[3] != shape[-1]:
        raise ConfigError(f"samples={path}: {x.shape[-1]} px images, the dataset's are {shape[-1]} px; add "
                          f"dataset.image_size={x.shape[-1]} to score them against the dataset at their size")
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise ConfigError(f"samples={path}: images of shape {tuple(x.shape[1:])}, the dataset's are {tuple(shape)}; "
                          f"write (n, C, H, W) in [0, 1], as `ganrun sample out=FILE.npy` does")
    if float(x.min()) < -1e-3 or float(x.max()) > 1 + 1e-3:
        raise ConfigError(f"samples={path}: values from {float(x.min()):.3g} to {float(x.max()):.3g}; "
                          f"images must be in [0, 1]")
    return x.clamp(0, 1).mul(2).sub(1)


def load_labels(path: str, samples_path: str, n: int) -> Tensor | None:
    """Class labels for a sample set: `path`, or SAMPLES.labels.npy beside an .npy when it exists."""
    import numpy as np

    from ganrun.config import ConfigError

    beside = Path(samples_path).with_suffix(".labels.npy")
    p = Path(path) if path else (beside if beside.is_file() else None)
    if p is None:
        return None
    if not p.is_file():
        raise ConfigError(f"labels={path}: no such file")
    labels = torch.from_numpy(np.load(p, allow_pickle=False).astype(np.int64)).flatten()
    if len(labels) != n:
        raise ConfigError(f"labels={p}: {len(labels)} labels for {n} samples")
    return labels


def dataset_config(name: str, overrides: list[str]) -> DictConfig:
    """The dataset node `ganrun train dataset=NAME [dataset.key=value ...]` would use."""
    from ganrun.config import ConfigError, compose, option_files
    from ganrun.config.targets import check_node

    if not name:
        raise ConfigError(f"samples=PATH needs dataset=NAME ({', '.join(option_files('dataset'))})")
    cfg = compose([f"dataset={name}", *overrides])
    check_node(cfg.dataset, "dataset")
    return cfg.dataset


def table(scores: dict[str, float], floor: dict[str, float]) -> str:
    """One row per metric: the value, real data's value at the same n, and for distances the ratio."""
    width = max(map(len, scores))
    rows = [f"{'metric'.ljust(width)}  {'samples':>10}  {'real':>10}"]
    for k, v in scores.items():
        real = floor.get(k.removeprefix("drs_"))
        real_text = "" if real is None else f"{real:>10.4g}"
        rows.append(f"{k.ljust(width)}  {v:>10.4g}  {real_text:>10}{versus_real(k, v, floor)}")
    return "\n".join(rows)


def add_inception(cfg: EvalConfig, evaluator: Evaluator, samples: Callable[[], Tensor], scores: dict) -> None:
    """With inception=true (or inception_weights=PATH): Inception FID / KID beside the other scores; without
    the packages or the download, a one-line note and the rest of the scores stand."""
    if not (cfg.inception or cfg.inception_weights):
        return
    try:
        scores.update(evaluator.inception(samples(), cfg.inception_weights))
    except metrics.MetricUnavailable as e:
        print(f"ganrun eval: inception skipped: {e}", file=sys.stderr)


def score_checkpoint(cfg: EvalConfig) -> tuple[Evaluator, dict[str, Any]]:
    from ganrun.artifacts import checkpoint
    from ganrun.artifacts.networks import load_discriminator, load_generator
    from ganrun.commands.sample import use_drs
    from ganrun.artifacts.networks import pick_device

    ckpt = checkpoint.load(cfg.ckpt)
    device = pick_device(cfg.device.value)
    G = load_generator(ckpt, device)
    D = load_discriminator(ckpt, device) if use_drs(ckpt, cfg.drs) else None  # refused before any work
    dataset_cfg = OmegaConf.create({"dataset": ckpt["config"]["dataset"]})
    rebase(dataset_cfg, ckpt.get("cwd"))  # relative paths: from the folder the run began in
    evaluator = Evaluator(instantiate(dataset_cfg.dataset, "dataset"), cfg.n)
    scores, floor = evaluator(G, seed=cfg.seed, D=D)
    if scores and len(ckpt["data"]["shape"]) == 3:  # images
        add_inception(cfg, evaluator, lambda: evaluator.samples(G, None, cfg.seed)[0], scores)
    path = Path(cfg.ckpt) if Path(cfg.ckpt).is_file() else Path(cfg.ckpt) / "checkpoints" / "last.pt"
    out = Path(cfg.out) if cfg.out else path.parent.parent / "eval" / f"step_{ckpt['step']:06d}.json"
    return evaluator, {"out": out, "checkpoint": str(path), "step": ckpt["step"], "seed": cfg.seed,
                       "metrics": scores, "real": floor}


def score_samples(cfg: EvalConfig, overrides: list[str]) -> tuple[Evaluator, dict[str, Any]]:
    from ganrun.config import ConfigError

    dataset_cfg = dataset_config(cfg.dataset, overrides)
    data = instantiate(dataset_cfg, "dataset")
    if not data.pixels:
        raise ConfigError(f"dataset={cfg.dataset}: samples=PATH scores images; this dataset holds points")
    x = load_samples(cfg.samples, tuple(data.shape))
    labels = load_labels(cfg.labels, cfg.samples, len(x))
    evaluator = Evaluator(data, len(x))
    if evaluator.n < len(x):  # a small set's floor has fewer real images: score as many samples as it has
        x, labels = x[:evaluator.n], labels[:evaluator.n] if labels is not None else None
    scores, floor = evaluator.score(x, labels)
    if scores:
        add_inception(cfg, evaluator, lambda: x, scores)
    out = Path(cfg.out) if cfg.out else Path(cfg.samples.rstrip("/")).with_suffix(".eval.json")
    return evaluator, {"out": out, "samples": str(cfg.samples), "n": len(x), "dataset": cfg.dataset,
                       "metrics": scores, "real": floor}


def main(args: list[str]) -> int:
    """`ganrun eval ckpt=PATH | samples=PATH dataset=NAME [dataset.key=value] [n=5000] [out=JSON]`: print the
    metrics table beside real data's, write JSON (bad input raises a UserError: see ganrun.errors.run)."""
    import json

    from ganrun.config import ConfigError

    overrides = [a for a in args if a.startswith("dataset.")]
    cfg = parse_key_values([a for a in args if a not in overrides], EvalConfig)
    if not cfg.ckpt and not cfg.samples:
        raise ConfigError("what to score: give ckpt=RUN (a run folder or checkpoint) or samples=PATH dataset=NAME "
                          "(an .npy or a folder of images)")
    if cfg.ckpt and cfg.samples:
        raise ConfigError("give ckpt=RUN or samples=PATH dataset=NAME, not both")
    if overrides and not cfg.samples:
        raise ConfigError(f"{overrides[0]}: dataset keys go with samples=PATH; a checkpoint carries its dataset")
    if cfg.inception_weights:  # a missing or wrong file is refused before any work
        try:
            metrics.inception_network(cfg.inception_weights)
        except metrics.MetricUnavailable:
            pass  # said after the other scores
    evaluator, report = score_samples(cfg, overrides) if cfg.samples else score_checkpoint(cfg)
    out = report.pop("out")
    if not report["metrics"]:
        print(f"ganrun eval: no metrics for this dataset ({evaluator.settings.get('skipped', '')})")
        return 0
    report.update({"per_class": evaluator.per_class, "settings": evaluator.settings})
    print(table(report["metrics"], report["real"]))
    print("settings: " + ", ".join(f"{k}={v}" for k, v in evaluator.settings.items()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
