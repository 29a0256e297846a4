"""Evaluation of a generator, or of any set of samples: the metrics that fit its dataset, each beside
the same metrics for real data measured the same way (same n): the floor a perfect generator reaches.

2-D mixtures: modes covered, % high quality, reverse KL (PacGAN protocol, 2,500 samples).
Stacked MNIST: modes covered of 1,000 and KL to uniform (26,000 samples, each channel classified).
Labelled image sets: in a classifier's feature space, against the real test split: Fréchet distance and
KID; improved precision / recall (fidelity / diversity) and density / coverage (k = 3); classes covered,
class KL, confidence and the share read with > 0.9 confidence; within-class diversity; and for a
conditional G, the per-class hit rate and the intra-class FD. MNIST and Fashion-MNIST use the shipped
feature networks (ganrun.features); other labelled sets train a small classifier on first use
(ganrun.classifier). Unlabelled image folders get no metrics yet.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ganrun import classifier, features, images, metrics, rejection
from ganrun.config import Device, parse_key_values
from ganrun.targets import instantiate
from ganrun.data import Dataset, to_unit_range
from ganrun.models.common import eval_mode, noise
from ganrun.sweep import versus_real

log = logging.getLogger(__name__)

STACKED_SAMPLES = 26000  # the PacGAN / VEEGAN Stacked MNIST sample count
NEIGHBOURS = 3  # k of the k-NN balls in precision / recall / density / coverage
PerClass = dict[str, list[float]]


def real_draw(data: Any, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
    """n real training images in [-1, 1] (all of them when the set is smaller) and their labels."""
    images, labels = data.draw(n, seed)
    return to_unit_range(images), labels


class Suite(Protocol):
    """The metrics of one kind of dataset."""

    n: int  # samples per evaluation (a protocol's count, or the user's)
    settings: dict[str, Any]

    def score(self, samples: Tensor, labels: Tensor | None = None) -> tuple[dict[str, float], PerClass]:
        """Scalar scores and per-class lists for samples on the CPU (labels: the classes a conditional G
        was asked for)."""

    def real(self, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
        """n real samples (and labels) that score the floor."""


class PointsSuite:
    """2-D mixtures: the PacGAN protocol, and the energy distance to a fixed real sample."""

    def __init__(self, data: Any):
        self.data, self.n = data, metrics.TOY_SAMPLES
        self.reference = data.sample(self.n, torch.Generator().manual_seed(2))
        self.settings = {"samples": self.n, "protocol": "PacGAN: HQ within 3 sigma of the nearest mode",
                         "energy": f"energy distance to {self.n} real points"}

    def score(self, samples: Tensor, labels: Tensor | None = None) -> tuple[dict[str, float], PerClass]:
        scores = metrics.toy_metrics(samples, self.data.centers, self.data.sigma)
        return {**scores, "energy": metrics.energy_distance(samples.cpu(), self.reference)}, {}

    def real(self, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
        return self.data.sample(n, torch.Generator().manual_seed(seed)), None


class StackedSuite:
    """Stacked MNIST: each channel read by the MNIST feature network; a mode is a digit triple."""

    def __init__(self, data: Any, net: nn.Module, info: dict[str, Any]):
        self.data, self.net, self.n = data, net, STACKED_SAMPLES
        self.settings = {"samples": self.n, "protocol": "PacGAN Stacked MNIST: each channel classified, 1,000 modes",
                         "classifier_test_accuracy": info["test_accuracy"]}

    @torch.no_grad()
    def score(self, samples: Tensor, labels: Tensor | None = None) -> tuple[dict[str, float], PerClass]:
        n = samples.shape[0]
        per_channel = samples.reshape(n * 3, 1, *samples.shape[2:])
        digits = torch.cat([self.net.classify(self.net.features(x)).argmax(1)
                            for x in per_channel.split(3000)]).view(n, 3)
        counts = torch.bincount((digits * torch.tensor([100, 10, 1])).sum(1), minlength=1000)
        return {"modes": float((counts > 0).sum()), "mode_kl": metrics.kl_to_uniform(counts)}, {}

    def real(self, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
        return real_draw(self.data, n, seed)


class ImageSuite:
    """Labelled images in a classifier's feature space, against a real reference (the test split)."""

    def __init__(self, data: Any, net: nn.Module, ref: features.Reference, n: int):
        self.data, self.net, self.ref, self.n = data, net, ref, n
        self.n_classes = int(ref.labels.max()) + 1
        self.ref_spread = [metrics.mean_distance(ref.features[ref.labels == c][:1000]) for c in range(self.n_classes)]
        self._radii: dict[int, tuple[Tensor, Tensor]] = {}  # per sample count: (real subset, its k-NN radii)
        self.settings = {"samples": n, "reference": f"{ref.name} test split ({len(ref.features)} images)",
                         "feature_net_test_accuracy": ref.info["test_accuracy"], "neighbours_k": NEIGHBOURS}

    @torch.no_grad()
    def embed(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        """(features, class probabilities) of samples in [-1, 1]."""
        feats = torch.cat([self.net.features(x.float()) for x in samples.split(1000)])
        return feats, self.net.classify(feats)

    def manifold(self, m: int) -> tuple[Tensor, Tensor]:
        """A fixed subset of m reference features (as many reals as fakes) and their k-NN radii."""
        m = min(m, len(self.ref.features))
        if m not in self._radii:
            idx = torch.randperm(len(self.ref.features), generator=torch.Generator().manual_seed(0))[:m]
            real = self.ref.features[idx]
            self._radii[m] = (real, metrics.knn_radii(real, NEIGHBOURS))
        return self._radii[m]

    def score(self, samples: Tensor, labels: Tensor | None = None) -> tuple[dict[str, float], PerClass]:
        feats, probs = self.embed(samples)
        real, radii = self.manifold(len(feats))
        scores = {"fd": metrics.frechet_from_stats(*metrics.gaussian_stats(feats), self.ref.mean, self.ref.cov),
                  "kid": metrics.kid(feats, self.ref.features),
                  **metrics.prdc(real, feats, NEIGHBOURS, real_radii=radii), **metrics.class_metrics(probs)}
        extra, per_class = self.per_class(feats, probs, labels)
        return {**scores, **extra}, per_class

    def per_class(self, feats: Tensor, probs: Tensor, labels: Tensor | None) -> tuple[dict[str, float], PerClass]:
        """Within-class diversity (mean pairwise feature distance over the real test digits' of that class;
        classes by the requested label for a conditional G, else by the classifier) and, for a
        conditional G, the hit rate and intra-class FD (StudioGAN's iFID)."""
        pred = probs.argmax(1)
        group = pred if labels is None else labels
        share = torch.bincount(pred, minlength=self.n_classes).double() / len(pred)
        diversity = [metrics.mean_distance(feats[group == c]) / self.ref_spread[c] for c in range(self.n_classes)]
        per_class: PerClass = {"share": share.tolist(), "diversity": diversity}
        scores = {"class_diversity": _nanmean(diversity)}
        if labels is not None:
            hits = [float((pred[labels == c] == c).double().mean()) if (labels == c).any() else math.nan
                    for c in range(self.n_classes)]
            fds = [metrics.frechet_distance(feats[labels == c], self.ref.features[self.ref.labels == c])
                   if int((labels == c).sum()) > 1 else math.nan for c in range(self.n_classes)]
            per_class.update({"hit_rate": hits, "fd": fds})
            scores.update({"hit_rate": _nanmean(hits), "intra_fd": _nanmean(fds)})
        return scores, per_class

    def real(self, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
        return real_draw(self.data, n, seed)


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def trained_reference(data: Dataset) -> tuple[nn.Module, features.Reference] | None:
    """A classifier trained on first use (cached) and its test-split reference, for labelled sets with
    train/test splits and no shipped network; None when the set has no such splits."""
    if data.labels is None or data.make_split is None:
        return None
    train, test = data.make_split("train"), data.make_split("test")
    name = f"{data.name}-{data.shape[-1]}px"
    net, info = classifier.load_or_train(name, train, test)
    with torch.no_grad():
        feats = torch.cat([net.features(to_unit_range(x)) for x in test.images.split(1000)])
    mean, cov = metrics.gaussian_stats(feats)
    return net, features.Reference(name, feats, test.labels, mean, cov, info)


def make_suite(data: Dataset, n: int) -> tuple[Suite | None, dict[str, Any]]:
    """The metric suite for a dataset (None when it has none) and the settings that describe it."""
    if data.kind == "points":
        return PointsSuite(data), {}
    digits = data.digits  # Stacked MNIST: a suite over each channel's digit
    shipped = features.shipped((digits if digits is not None else data).name)
    if shipped and data.shape[0] in (1, 3):
        net, ref = features.load(shipped)
        about = {"features": f"ganrun/weights/{shipped}.pt (FeatureNet-{features.FEATURES}, shipped)",
                 "weights_sha256": features.SHIPPED.get(shipped, "")}
        if digits is not None:
            return StackedSuite(data, net, ref.info), about
        if data.shape[0] == 1:
            return ImageSuite(data, net, ref, n), about
    trained = trained_reference(data)
    if trained is None:
        return None, {"skipped": "no labelled train/test splits for this dataset"}
    net, ref = trained
    about = {"features": f"SmallCNN-{classifier.FEATURES} penultimate, trained on first use",
             "weights_sha256": ref.info["weights_sha256"]}
    return ImageSuite(data, net, ref, n), about


class Evaluator:
    """Built once per run (lazily: a classifier may need training); call it with G, or score a set."""

    def __init__(self, data: Dataset, n_images: int = 5000):
        self.data = data
        self.suite, about = make_suite(data, n_images)
        self.n = self.suite.n if self.suite else n_images
        self.settings: dict[str, Any] = {**(self.suite.settings if self.suite else {"samples": self.n}), **about}
        self.per_class: PerClass = {}  # of the last scored set
        self._floors: dict[tuple[int, bool], dict[str, float]] = {}

    @torch.no_grad()
    def samples(self, G: nn.Module, z: Tensor | None, seed: int) -> tuple[Tensor, Tensor | None]:
        """n samples of G in eval mode on the CPU, from z or from n fresh z drawn with `seed`; and for a
        conditional G the classes asked for (each class in turn)."""
        if z is None or len(z) != self.n:
            z = noise(G, self.n, generator=torch.Generator().manual_seed(seed))
        device = next(G.parameters()).device
        n_classes = getattr(G, "n_classes", 0)
        labels = torch.arange(len(z)) % n_classes if n_classes else None
        chunks = []
        with eval_mode(G):
            for i in range(0, len(z), 1000):
                part = z[i:i + 1000].to(device)
                chunks.append(G(part) if labels is None else G(part, labels[i:i + 1000].to(device)))
        if getattr(G, "pseudo_classes", False):  # train.clusters: drawn from every cluster, scored as one set
            labels = None
        return torch.cat([c.float().cpu() for c in chunks]), labels

    def floor(self, n: int, conditional: bool) -> dict[str, float]:
        """The suite's scores of n real samples (with their labels when conditional): what real data gets."""
        key = (n, conditional)
        if key not in self._floors:
            real, labels = self.suite.real(n, seed=1)
            self._floors[key] = self.suite.score(real, labels if conditional else None)[0]
            self.settings["real"] = f"{len(real)} real training samples, scored alike"
        return self._floors[key]

    def score(self, samples: Tensor, labels: Tensor | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """(scores, floor): a sample set's metrics and real data's at the same n; per-class lists in per_class."""
        if self.suite is None:
            return {}, {}
        scores, self.per_class = self.suite.score(samples, labels)
        return scores, self.floor(len(samples), labels is not None)

    @torch.no_grad()
    def inception(self, G: nn.Module, seed: int, weights: str) -> dict[str, float]:
        """Inception FID / KID of n samples against the real training images (see metrics.inception_scores)."""
        fake = images.to_unit(self.samples(G, None, seed)[0])
        real = self.data.draw(self.n, seed)[0].float().div(255)
        scores = metrics.inception_scores(fake, real, weights)
        self.settings.update({"inception": "torchmetrics FID/KID, 2048-d pool features",
                              "inception_reference": f"{len(real)} training images"})
        return scores

    @torch.no_grad()
    def __call__(self, G: nn.Module, z: Tensor | None = None, seed: int = 0,
                 D: nn.Module | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """(scores, floor) for G's samples (eval mode) on z, or on n fresh z drawn with `seed`. With D (a
        sigmoid GAN's discriminator), also the scores of n samples kept by D's rejection test, as drs_<name>."""
        if self.suite is None:
            return {}, {}
        scores, floor = self.score(*self.samples(G, z, seed))
        if D is not None:
            per_class = self.per_class
            kept, info = rejection.sample(G, D, self.n, torch.Generator().manual_seed(seed))
            scores.update({f"drs_{k}": v for k, v in {**self.suite.score(kept)[0], **info}.items()})
            self.per_class = per_class
            self.settings["drs"] = (f"Azadi et al. 2019: keep x ~ G with probability exp(logit D(x) - M), M the max "
                                    f"logit capped at {rejection.BUDGET} expected proposals per sample")
        return scores, floor


# ---------------------------------------------------------------- `ganrun eval`

@dataclass
class EvalConfig:
    ckpt: str = ""  # a checkpoint file or a run folder (uses its checkpoints/last.pt)
    samples: str = ""  # instead of ckpt: an .npy of images (n, C, H, W) in [0, 1] or a folder of PNG/JPG files
    dataset: str = ""  # with samples: the dataset whose reference scores them (mnist-sample, mnist, ...)
    labels: str = ""  # with samples: an .npy of the class each was drawn for (default: SAMPLES.labels.npy if any)
    n: int = 5000  # samples (the toy sets and Stacked MNIST use their protocol's count)
    seed: int = 0  # fixes z
    out: str = ""  # JSON report; default RUN/eval/step_NNNNNN.json, or SAMPLES.eval.json
    device: Device = Device.auto  # auto (CUDA when there is one), cpu or cuda
    inception: bool = False  # add Inception FID/KID (needs the `inception` extra and its weights)
    inception_weights: str = ""  # a local Inception weights file instead of the download
    drs: Optional[bool] = None  # also score D's rejection sampling (drs_* keys); default: the run's train.drs


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
    from ganrun.targets import check_node

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


def score_checkpoint(cfg: EvalConfig) -> tuple[Evaluator, dict[str, Any]]:
    from ganrun import checkpoint
    from ganrun.build import pick_device
    from ganrun.artifacts import load_discriminator, load_generator
    from ganrun.sample import use_drs

    ckpt = checkpoint.load(cfg.ckpt)
    device = pick_device(cfg.device.value)
    G = load_generator(ckpt, device)
    D = load_discriminator(ckpt, device) if use_drs(ckpt, cfg.drs) else None  # refused before any work
    dataset_cfg = OmegaConf.create(ckpt["config"]["dataset"])
    evaluator = Evaluator(instantiate(dataset_cfg, "dataset"), cfg.n)
    scores, floor = evaluator(G, seed=cfg.seed, D=D)
    if cfg.inception and ckpt["data"]["kind"] == "image":
        try:
            scores.update(evaluator.inception(G, cfg.seed, cfg.inception_weights))
        except metrics.MetricUnavailable as e:
            print(f"ganrun eval: inception skipped: {e}", file=sys.stderr)
    path = Path(cfg.ckpt) if Path(cfg.ckpt).is_file() else Path(cfg.ckpt) / "checkpoints" / "last.pt"
    out = Path(cfg.out) if cfg.out else path.parent.parent / "eval" / f"step_{ckpt['step']:06d}.json"
    return evaluator, {"out": out, "checkpoint": str(path), "step": ckpt["step"], "seed": cfg.seed,
                       "metrics": scores, "real": floor}


def score_samples(cfg: EvalConfig, overrides: list[str]) -> tuple[Evaluator, dict[str, Any]]:
    from ganrun.config import ConfigError

    dataset_cfg = dataset_config(cfg.dataset, overrides)
    data = instantiate(dataset_cfg, "dataset")
    if data.kind != "image":
        raise ConfigError(f"dataset={cfg.dataset}: samples=PATH scores images; this dataset holds points")
    x = load_samples(cfg.samples, tuple(data.shape))
    labels = load_labels(cfg.labels, cfg.samples, len(x))
    evaluator = Evaluator(data, len(x))
    scores, floor = evaluator.score(x, labels)
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
