"""`ganrun sample ckpt=PATH n=64 out=grid.png seed=0`: render G's samples from a checkpoint alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from ganrun.artifacts import checkpoint
from ganrun.artifacts.networks import load_discriminator, load_generator, pick_device
from ganrun.config import SAMPLE_MODES, ConfigError, SampleConfig, parse_key_values
from ganrun.config.targets import instantiate
from ganrun.data import pictures as images
from ganrun.data.base import SampleSpace, named_classes
from ganrun.data.base import space as data_space
from ganrun.metrics import rejection
from ganrun.metrics.evaluator import class_draws
from ganrun.models.common import asked_classes, class_inputs, draw

SUFFIXES = (".png", ".npy", ".gif", "")  # "": a folder of PNG files




def parse_seeds(text: str) -> list[int]:
    """`0-35`, `1,5,9` or `0-3,10` -> the seeds, in order (ranges include both ends)."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        first, dash, last = part.partition("-")
        if not (first.isdigit() and (not dash or last.isdigit())) or (dash and int(last) < int(first)):
            raise ConfigError(f"seeds={text}: use a range A-B (A <= B), a list A,B,C or both, e.g. seeds=0-35")
        seeds += list(range(int(first), int(last) + 1)) if dash else [int(first)]
    return seeds


def parse(args: list[str]) -> SampleConfig:
    """key=value arguments -> a typed SampleConfig (unknown keys and wrong types are ConfigErrors)."""
    cfg = parse_key_values(args, SampleConfig)
    if cfg.seeds:
        given = [a.split("=", 1)[0] for a in args if a.startswith(("n=", "seed="))]
        if given:
            raise ConfigError(f"seeds={cfg.seeds} picks the samples itself; drop {', '.join(given)}")
        if cfg.mode != "sample" or cfg.drs:
            raise ConfigError(f"seeds={cfg.seeds} draws one sample per seed: it does not combine with "
                              f"mode=interp or drs=true")
        cfg.n = len(parse_seeds(cfg.seeds))
    suffix = "" if cfg.out.endswith("/") else Path(cfg.out).suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"out={cfg.out}: unsupported suffix; use .png, .npy, .gif or a folder (DIR/)")
    if cfg.mode not in SAMPLE_MODES:
        raise ConfigError(f"mode={cfg.mode!r}: use sample or interp")
    if suffix == ".gif" and cfg.mode != "interp":
        raise ConfigError(f"out={cfg.out}: a GIF animates an interpolation; add mode=interp")
    if cfg.frames < 2:
        raise ConfigError(f"frames={cfg.frames}: must be >= 2")
    if cfg.truncation < 0:
        raise ConfigError(f"truncation={cfg.truncation}: must be > 0 (e.g. 1.0), or 0 for off")
    if cfg.drs and (cfg.mode != "sample" or cfg.truncation > 0):
        raise ConfigError("drs=true filters independent samples: it does not combine with mode=interp or truncation")
    return cfg


def latents(n: int, dim: int, seed: int, truncation: float = 0.0, prior: str = "gaussian") -> torch.Tensor:
    """n latent vectors from `seed` (on the CPU, so every device gets the same): standard normal, or
    uniform on [-1, 1] for prior="uniform"; with truncation > 0 (normal only), entries beyond
    +-truncation are redrawn until none is (a truncated normal)."""
    if prior == "uniform" and truncation > 0:
        raise ConfigError("truncation=...: this G draws z uniformly on [-1, 1]; truncation is for a normal prior")
    gen = torch.Generator().manual_seed(seed)
    z = draw((n, dim), prior, gen)
    if truncation > 0:
        while True:
            out = z.abs() > truncation
            if not out.any():
                break
            z[out] = torch.randn(int(out.sum()), generator=gen)
    return z


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of z0 and z1 at fractions t: (N, D), (N, D), (T,) -> (N, T, D).
    Gaussian latents live near a sphere, which a straight line would cut through."""
    cos = (F.normalize(z0, dim=1) * F.normalize(z1, dim=1)).sum(1).clamp(-1, 1)
    omega = torch.acos(cos)[:, None, None]  # (N, 1, 1)
    t = t[None, :, None]
    sin = torch.sin(omega)
    linear = sin.abs() < 1e-6  # (anti)parallel: fall back to a straight line
    w0 = torch.where(linear, 1 - t, torch.sin((1 - t) * omega) / torch.where(linear, 1.0, sin))
    w1 = torch.where(linear, t, torch.sin(t * omega) / torch.where(linear, 1.0, sin))
    return w0 * z0[:, None] + w1 * z1[:, None]


def plain_clusters(data: dict) -> bool:
    """Whether a checkpoint's G was conditioned on k-means clusters of the images, not within the set's labels
    (its classes are then no labels to score by)."""
    return "clusters" in data and data.get("class_of") is None


def class_mix(data: dict) -> list[int] | None:
    """The images per class a checkpoint's G is asked for in a sample set: the training set's labels (not
    for plain clusters, which are of one size); None where the checkpoint predates class_counts."""
    return None if plain_clusters(data) else data.get("class_counts")


def class_numbers(classes: list[Any] | None, names: list[str]) -> list[int] | None:
    """classes= as class numbers: each given as its number or, where the checkpoint kept its set's class names
    (sub-folders, a Hugging Face label column, a ZIP's dataset.json), as its name, or as the one name it matches
    ignoring case (a number is always a class number)."""
    if classes is None:
        return None
    numbers = []
    folded = [n.casefold() for n in names]
    for c in classes:
        text = str(c)
        if text.lstrip("-").isdigit():
            numbers.append(int(text))
        elif text in names:
            numbers.append(names.index(text))
        elif folded.count(text.casefold()) == 1:
            numbers.append(folded.index(text.casefold()))
        else:
            known = f"this checkpoint's classes: {named_classes(names, most=len(names))}" if names else \
                "this checkpoint's classes have no names, only numbers"
            raise ConfigError(f"classes=[{','.join(map(str, classes))}]: no class named {text!r}; {known}")
    return numbers


def check_classes(n_classes: int, classes: list[int] | None, names: list[str] | None = None) -> None:
    if classes is None:
        return
    if not n_classes:
        raise ConfigError("classes=...: this checkpoint's model is not conditional (train with model.conditional=true)")
    if not classes or any(not 0 <= c < n_classes for c in classes):
        named = f" ({named_classes(names, most=len(names))})" if names else ""
        raise ConfigError(f"classes={list(classes)}: give class numbers from 0 to {n_classes - 1}{named}")


def sample_labels(n_classes: int, n: int, classes: list[int] | None, seeds: list[int] | None = None,
                  every: bool = False, counts: list[int] | None = None) -> tuple[torch.Tensor | None, int]:
    """The class of each sample and the grid's row length (0: a near-square grid). A picture: one class per
    row (images.class_rows). seeds: one sample per seed, the classes in turn, or each seed in every class
    of `classes` (a row each). every (a sample set, not a picture): every class in blocks sized as the
    training set's classes (`counts`, as the run's own metrics draw them; equal without) unless `classes`
    are given. Always exactly n samples (n = len(seeds) x len(classes) with both)."""
    if not n_classes:
        return None, 0
    if seeds:
        if classes is None:
            return torch.arange(len(seeds)) % n_classes, 0
        return torch.tensor(classes).repeat_interleave(len(seeds)), len(seeds)
    if every and classes is None and counts is not None and len(counts) == n_classes:
        mix = torch.repeat_interleave(torch.arange(n_classes), torch.tensor(counts))
        return class_draws(n, n_classes, mix, 0).sort().values, 0
    if every and classes is None:
        return torch.arange(n) * n_classes // n, 0
    return images.class_rows(n_classes, n, classes)


@torch.no_grad()
def generate(ckpt: dict, n: int, seed: int, device: torch.device, classes: list[int] | None = None,
             truncation: float = 0.0, ema: bool | None = None, drs: bool = False,
             seeds: list[int] | None = None, every: bool = False
             ) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """Samples from the checkpoint's G (see load_generator), the grid row length that fits them, and each
    sample's class (None for an unconditional G): n samples, for a conditional G in the classes sample_labels
    gives. drs: n samples kept by D's rejection test (ganrun.metrics.rejection) instead, with the classes they
    were kept in. seeds: one z per seed (the same image for a seed whatever the others), drawn in each class
    of `classes` when given."""
    G = load_generator(ckpt, device, ema)
    check_classes(asked_classes(G), classes, ckpt["data"].get("class_names"))
    labels, nrow = sample_labels(asked_classes(G), n, classes, seeds, every, class_mix(ckpt["data"]))
    if drs:  # proposals in the classes asked for: classes=, else every class in the data's mix
        wanted = sample_labels(asked_classes(G), n, classes, every=True, counts=class_mix(ckpt["data"]))[0]
        pool = class_inputs(G, wanted, seed).cpu() if wanted is not None else None
        x, inputs, _ = rejection.draw(G, load_discriminator(ckpt, device), n, torch.Generator().manual_seed(seed),
                                      classes=pool)
        class_of = getattr(G, "class_of", None)  # clusters within labels: each cluster's label
        return x, nrow, (class_of[inputs] if class_of is not None and inputs is not None else inputs)
    if seeds:
        z = torch.cat([latents(1, G.latent_dim, s, truncation, G.latent) for s in seeds])
        z = z.repeat(len(labels) // len(seeds), 1) if labels is not None else z  # each class row: every seed
    else:
        z = latents(n if labels is None else len(labels), G.latent_dim, seed, truncation, G.latent)
    x = G(z.to(device)) if labels is None else G(z.to(device), class_inputs(G, labels, seed).to(device))
    return x.float().cpu(), nrow, labels


@torch.no_grad()
def interpolate(ckpt: dict, rows: int, frames: int, seed: int, device: torch.device,
                classes: list[int] | None = None, truncation: float = 0.0, ema: bool | None = None) -> torch.Tensor:
    """(rows, frames, ...) samples: each row walks by slerp from one latent point to another
    (a conditional G keeps one class per row: `classes` in turn, default 0, 1, ...)."""
    G = load_generator(ckpt, device, ema)
    n_classes = asked_classes(G)
    check_classes(n_classes, classes, ckpt["data"].get("class_names"))
    ends = latents(2 * rows, G.latent_dim, seed, truncation, G.latent)
    path = slerp(ends[:rows], ends[rows:], torch.linspace(0, 1, frames)).reshape(rows * frames, -1)
    if n_classes:
        chosen = torch.tensor(classes or range(n_classes))
        row_class = chosen[torch.arange(rows) % len(chosen)]  # the classes in turn, one per row
        x = G(path.to(device), class_inputs(G, row_class, seed).repeat_interleave(frames).to(device))
    else:
        x = G(path.to(device))
    return x.float().cpu().reshape(rows, frames, *x.shape[1:])


def use_drs(ckpt: dict, drs: bool | None) -> bool:
    """Whether to filter with D: `drs` when given, else the run's own train.drs (checked when it trained)."""
    if drs is None:
        return bool(ckpt["config"].get("train", {}).get("drs", False))
    if drs:
        rejection.check(instantiate(OmegaConf.create(ckpt["config"]["loss"]), "loss"), ckpt["config"]["model"])
    return drs


def game(ckpt: dict, device: torch.device, ema: bool | None = None) -> tuple[Any, Any, bool]:
    """What the 1-D game's figure draws (SampleSpace.picture's `game`): the checkpoint's G and D, and whether
    D's output is a probability (its loss says), all rebuilt from the file."""
    loss = instantiate(OmegaConf.create(ckpt["config"]["loss"]), "loss")
    return load_generator(ckpt, device, ema), load_discriminator(ckpt, device), loss.probability


def seed_names(seeds: list[int], labels: torch.Tensor | None) -> list[str]:
    """File names of seeds= samples: seed0007, or seed0007-class3 for a conditional G's rows."""
    if labels is None:
        return [f"seed{s:04d}" for s in seeds]
    return [f"seed{s:04d}-class{int(c)}" for s, c in zip(seeds * (len(labels) // len(seeds)), labels)]


def write(samples: torch.Tensor, space: SampleSpace, out: Path, nrow: int, names: list[str] | None = None,
          labels: torch.Tensor | None = None, game: Callable[[], tuple[Any, Any, bool]] | None = None) -> None:
    """Save samples: .npy (what the space writes: images in [0, 1], points as is), a .png picture (a grid, one
    class per row with `labels` and nrow; a scatter plot over the data; the 1-D game's figure), or a folder
    (out ending in /, or with no suffix) of one PNG per image, named NNNNNN.png or by `names`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        np.save(out, space.to_array(samples).astype(np.float32))
    elif not out.suffix:
        out.mkdir(parents=True, exist_ok=True)
        for i, x in enumerate(samples):
            images.save_png(images.to_unit(x), out / f"{names[i] if names else f'{i:06d}'}.png")
    else:
        rows = labels is not None and nrow and len(labels) == len(samples)
        picture = space.picture(samples, labels if rows else None, nrow, f"{len(samples)} samples", game=game)
        images.save_png(picture, out)


def write_gif(path: torch.Tensor, out: Path, ms_per_frame: int = 120) -> None:
    """An animated GIF of (rows, frames, C, H, W) interpolations: frame t shows every row's image t,
    going there and back so the loop is smooth."""
    from PIL import Image

    rows, frames = path.shape[:2]
    order = list(range(frames)) + list(range(frames - 2, 0, -1))
    pictures = []
    for t in order:
        grid = images.grid(path[:, t])  # (C, H, W) in [0, 1]
        arr = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        pictures.append(Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr))
    out.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(out, save_all=True, append_images=pictures[1:], duration=ms_per_frame, loop=0)


def main(args: list[str]) -> int:
    """Entry point for `ganrun sample` (bad input raises a UserError: see ganrun.errors.run)."""
    cfg = parse(args)
    device = pick_device(cfg.device.value)
    ckpt = checkpoint.load(cfg.ckpt)
    out, space = Path(cfg.out), data_space(ckpt["data"], ckpt["config"]["dataset"])
    if not space.pixels and (cfg.mode == "interp" or not out.suffix):
        raise ConfigError("mode=interp and out=DIR/ are for image models; for points use .png (a scatter plot) "
                          "or .npy")
    names = ckpt["data"].get("class_names", [])
    classes = class_numbers(cfg.classes, names)
    drs = False
    if cfg.mode == "interp":
        path = interpolate(ckpt, cfg.n, cfg.frames, cfg.seed, device, classes, cfg.truncation, cfg.ema)
        if out.suffix.lower() == ".gif":
            write_gif(path, out)
        else:  # one row per interpolation
            write(path.flatten(0, 1), space, out, cfg.frames)
        samples = path.flatten(0, 1)
    else:
        drs = use_drs(ckpt, cfg.drs) and not cfg.truncation > 0
        seeds = parse_seeds(cfg.seeds) if cfg.seeds else None
        every = out.suffix.lower() == ".npy"  # a sample set for metrics: every class, not a picture's rows
        samples, nrow, labels = generate(ckpt, cfg.n, cfg.seed, device, classes, cfg.truncation, cfg.ema, drs,
                                         seeds, every)
        write(samples, space, out, cfg.nrow or nrow, seed_names(seeds, labels) if seeds else None,
              None if cfg.nrow or drs else labels, game=lambda: game(ckpt, device, cfg.ema))
        if labels is not None and every and not plain_clusters(ckpt["data"]):  # for `ganrun eval`
            np.save(out.with_suffix(".labels.npy"), labels.numpy())
    print(f"wrote {len(samples)} samples to {cfg.out}" + (" (kept by D's rejection test)" if drs else ""))
    return 0
