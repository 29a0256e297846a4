"""Evaluation of a generator: the metrics that fit its dataset, with the settings they were measured with.

2-D mixtures: modes covered, % high quality, reverse KL (PacGAN protocol, 2,500 samples).
Labelled image sets: a cached classifier (ganrun.classifier) gives classes covered, KL of the
predicted-class histogram to uniform, mean confidence, and the Fréchet distance and KID of its
features against the test split. Unlabelled image folders get no metrics yet.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ganrun import classifier, images, metrics, rejection
from ganrun.config import Device, instantiate, parse_key_values, resolve_target
from ganrun.models.common import eval_mode, noise

log = logging.getLogger(__name__)


STACKED_SAMPLES = 26000  # the PacGAN / VEEGAN Stacked MNIST sample count


@torch.no_grad()
def stacked_modes(net: nn.Module, samples: Tensor) -> dict[str, float]:
    """Modes covered (of 1,000) and KL to uniform, classifying each channel of (n, 3, H, W) samples."""
    n = samples.shape[0]
    per_channel = samples.reshape(n * 3, 1, *samples.shape[2:])
    digits = torch.cat([net(x).argmax(1) for x in per_channel.split(3000)]).view(n, 3)
    counts = torch.bincount((digits * torch.tensor([100, 10, 1])).sum(1), minlength=1000)
    return {"modes": float((counts > 0).sum()), "mode_kl": metrics.kl_to_uniform(counts)}


class Evaluator:
    """Built once per run (lazily: the classifier may need training); call it with G."""

    def __init__(self, dataset_cfg: DictConfig, data: Any, n_images: int = 5000):
        self.data = data
        self.n = metrics.TOY_SAMPLES if data.kind == "points" else n_images
        self.settings: dict[str, Any] = {"samples": self.n}
        self.net: nn.Module | None = None
        self.reference: Tensor | None = None
        self.stacked = False
        if data.kind == "points":
            self.settings["protocol"] = "PacGAN: HQ within 3 sigma of the nearest mode"
            return
        target = resolve_target(dataset_cfg._target_, "dataset")
        if getattr(data, "labels", None) is None or "split" not in inspect.signature(target).parameters:
            self.settings["skipped"] = "no labelled train/test splits for this dataset"
            return
        plain = OmegaConf.to_container(dataset_cfg, resolve=True)
        splits = {s: instantiate(OmegaConf.create({**plain, "split": s}), "dataset") for s in ("train", "test")}
        name = getattr(data, "name", "data")
        self.stacked = hasattr(data, "digits")
        if self.stacked:  # classify each channel with a one-digit classifier: modes are digit triples
            self.n = STACKED_SAMPLES
            self.settings["samples"] = self.n
            splits = {s: d.digits for s, d in splits.items()}
            name = "mnist-digits"
        self.net, info = classifier.load_or_train(f"{name}-{data.shape[-1]}px", splits["train"], splits["test"])
        self.settings.update({"weights_sha256": info["weights_sha256"], "classifier_test_accuracy": info["test_accuracy"]})
        if self.stacked:
            self.settings["protocol"] = "PacGAN Stacked MNIST: each channel classified, 1,000 modes"
            return
        test = splits["test"]
        with torch.no_grad():
            self.reference = torch.cat([self.net.features(x.float().div(127.5).sub(1)) for x in test.images.split(1000)])
        self.settings.update({"features": f"SmallCNN-{classifier.FEATURES} penultimate",
                              "reference": f"{name} test split ({len(test.images)} images)"})

    @torch.no_grad()
    def samples(self, G: nn.Module, z: Tensor | None, seed: int) -> Tensor:
        """n samples of G in eval mode on the CPU: from z, or from n fresh z drawn with `seed`."""
        if z is None or len(z) != self.n:
            z = noise(G, self.n, generator=torch.Generator().manual_seed(seed))
        z = z.to(next(G.parameters()).device)
        with eval_mode(G):
            return torch.cat([G(chunk).float().cpu() for chunk in z.split(1000)])

    @torch.no_grad()
    def inception(self, G: nn.Module, seed: int, weights: str) -> dict[str, float]:
        """Inception FID / KID of n samples against the real training images (see metrics.inception_scores)."""
        fake = images.to_unit(self.samples(G, None, seed))
        real = self.data.images[torch.randperm(len(self.data.images), generator=torch.Generator().manual_seed(seed))
                                [:self.n]].float().div(255)
        scores = metrics.inception_scores(fake, real, weights)
        self.settings.update({"inception": "torchmetrics FID/KID, 2048-d pool features",
                              "inception_reference": f"{len(real)} training images"})
        return scores

    @torch.no_grad()
    def __call__(self, G: nn.Module, z: Tensor | None = None, seed: int = 0,
                 D: nn.Module | None = None) -> dict[str, float]:
        """Scores for G's samples (eval mode) on z, or on n fresh z drawn with `seed`. With D (a sigmoid
        GAN's discriminator), also the scores of n samples kept by D's rejection test, as drs_<name>."""
        if self.data.kind != "points" and self.net is None:
            return {}
        scores = self.score(self.samples(G, z, seed))
        if D is not None:
            kept, info = rejection.sample(G, D, self.n, torch.Generator().manual_seed(seed))
            scores.update({f"drs_{k}": v for k, v in {**self.score(kept), **info}.items()})
            self.settings["drs"] = (f"Azadi et al. 2019: keep x ~ G with probability exp(logit D(x) - M), M the max "
                                    f"logit capped at {rejection.BUDGET} expected proposals per sample")
        return scores

    def score(self, samples: Tensor) -> dict[str, float]:
        """The dataset's metrics for n samples on the CPU."""
        if self.data.kind == "points":
            return metrics.toy_metrics(samples, self.data.centers, self.data.sigma)
        if self.stacked:
            return stacked_modes(self.net, samples)
        feats = torch.cat([self.net.features(x) for x in samples.split(1000)])
        probs = torch.softmax(self.net.head(feats), dim=1)
        return {**metrics.class_metrics(probs), "fd": metrics.frechet_distance(feats, self.reference),
                "kid": metrics.kid(feats, self.reference)}


# ---------------------------------------------------------------- `ganrun eval`

@dataclass
class EvalConfig:
    ckpt: str = "???"  # a checkpoint file or a run folder (uses its checkpoints/last.pt)
    n: int = 5000  # samples (the toy sets and Stacked MNIST use their protocol's count)
    seed: int = 0  # fixes z
    out: str = ""  # JSON report; default RUN/eval/step_NNNNNN.json
    device: Device = Device.auto
    inception: bool = False  # add Inception FID/KID (needs the `inception` extra and its weights)
    inception_weights: str = ""  # a local Inception weights file instead of the download
    drs: Optional[bool] = None  # also score D's rejection sampling (drs_* keys); default: the run's train.drs


def main(args: list[str]) -> int:
    """`ganrun eval ckpt=PATH [n=5000] [seed=0] [out=JSON]`: print the metrics table, write JSON."""
    import json
    import sys
    from pathlib import Path

    from ganrun import checkpoint
    from ganrun.build import pick_device
    from ganrun.checkpoint import CheckpointError
    from ganrun.config import ConfigError
    from ganrun.data import DataError
    from ganrun.sample import load_discriminator, load_generator, use_drs

    try:
        cfg = parse_key_values(args, EvalConfig)
        ckpt_path, n, seed = cfg.ckpt, cfg.n, cfg.seed
        ckpt = checkpoint.load(ckpt_path)
        device = pick_device(cfg.device.value)
        G = load_generator(ckpt, device)
        D = load_discriminator(ckpt, device) if use_drs(ckpt, cfg.drs) else None  # refused before any work
        dataset_cfg = OmegaConf.create(ckpt["config"]["dataset"])
        evaluator = Evaluator(dataset_cfg, instantiate(dataset_cfg, "dataset"), n)
        scores = evaluator(G, seed=seed, D=D)
        if cfg.inception and ckpt["data"]["kind"] == "image":
            try:
                scores.update(evaluator.inception(G, seed, cfg.inception_weights))
            except metrics.MetricUnavailable as e:
                print(f"ganrun eval: inception skipped: {e}", file=sys.stderr)
    except (ConfigError, CheckpointError, DataError) as e:
        print(f"ganrun eval: error: {e}", file=sys.stderr)
        return 2
    if not scores:
        print(f"ganrun eval: no metrics for this dataset ({evaluator.settings.get('skipped', '')})")
        return 0
    ckpt_file = Path(ckpt_path) if Path(ckpt_path).is_file() else Path(ckpt_path) / "checkpoints" / "last.pt"
    out = Path(cfg.out) if cfg.out else ckpt_file.parent.parent / "eval" / f"step_{ckpt['step']:06d}.json"
    report = {"checkpoint": str(ckpt_file), "step": ckpt["step"], "seed": seed, "metrics": scores,
              "settings": evaluator.settings}
    width = max(map(len, scores))
    print("\n".join(f"{k.ljust(width)}  {v:.4g}" for k, v in scores.items()))
    print("settings: " + ", ".join(f"{k}={v}" for k, v in evaluator.settings.items()))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as e:
        print(f"ganrun eval: error: cannot write {out}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
