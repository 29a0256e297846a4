"""Evaluation of a generator, or of any set of samples: the metrics that fit its dataset, each beside
the same metrics for real data measured the same way (same n): the floor a perfect generator reaches.

2-D mixtures: modes covered, % high quality, reverse KL (PacGAN protocol, 2,500 samples) and the energy
distance. Stacked MNIST: modes covered of 1,000 and KL to uniform (26,000 samples, each channel
classified). Labelled image sets: in a classifier's feature space, against the real test split: Fréchet
distance and KID; improved precision / recall and density / coverage (k = 3); classes covered, class KL,
confidence; within-class diversity; and for a conditional G, the per-class hit rate and the intra-class FD.
MNIST and Fashion-MNIST use the shipped feature networks (ganrun.metrics.features); other image sets
train a small network on first use (ganrun.metrics.classifier): a classifier of their classes, or for a
set without labels one taught which way its images are turned; then there are no class metrics. A
user's folder, ZIP or HF set holds out a fixed seeded share as the reference (data.streamed)."""

from __future__ import annotations

import logging
import math
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ganrun.data import pictures as images
from ganrun.data import Dataset, to_unit_range
from ganrun.data.base import class_names
from ganrun.metrics import classifier, features, rejection
from ganrun.metrics import scores as metrics
from ganrun.models.common import asked_classes, class_inputs, eval_mode, noise

log = logging.getLogger(__name__)

STACKED_SAMPLES = 26000  # the PacGAN / VEEGAN Stacked MNIST sample count
NEIGHBOURS = 3  # k of the k-NN balls in precision / recall / density / coverage
MIN_REFERENCE = 8  # held-out images below which a user's set gets no metrics (k-NN balls need k + 1)
PerClass = dict[str, list[Any]]  # per class: floats, and class_names where the set has them


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

    def class_floor(self, n: int, conditional: bool) -> tuple[dict[str, float], int]:
        """Floor scores read from held-out images instead of `real`'s, and their count: none unless a suite
        reads classes with a classifier trained on the real samples (ImageSuite)."""
        return {}, 0


class PointsSuite(Suite):
    """2-D mixtures: the PacGAN protocol, and the energy distance to a fixed real sample."""

    def __init__(self, data: Any):
        self.data, self.n = data, metrics.TOY_SAMPLES
        self.reference = data.draw(self.n, seed=2)[0]
        self.settings = {"samples": self.n, "protocol": "PacGAN: HQ within 3 sigma of the nearest mode",
                         "energy": f"energy distance to {self.n} real points"}

    def score(self, samples: Tensor, labels: Tensor | None = None) -> tuple[dict[str, float], PerClass]:
        scores = metrics.toy_metrics(samples, self.data.modes, self.data.sigma)
        return {**scores, "energy": metrics.energy_distance(samples.cpu(), self.reference)}, {}

    def real(self, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
        return self.data.draw(n, seed)


class StackedSuite(Suite):
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


class ImageSuite(Suite):
    """Images in a feature network's space, against a real reference (the test split, or the share of a
    user's set held out for it): FD, KID, precision / recall / density / coverage; with class labels
    (a classifier's space) also the class metrics."""

    def __init__(self, data: Any, net: nn.Module, ref: features.Reference, n: int):
        self.net, self.ref = net, ref
        # the floor's real images: the set itself, or its rest when the reference was carved out of it
        self.data = data.make_split("train") if data.held_out else data
        self.n = min(n, len(self.data))
        self.n_classes = int(ref.labels.max()) + 1 if ref.labels is not None else 0
        self.ref_spread = [metrics.mean_distance(ref.features[ref.labels == c][:1000]) for c in range(self.n_classes)]
        self._radii: dict[int, tuple[Tensor, Tensor]] = {}  # per sample count: (real subset, its k-NN radii)
        reference = data.held_out or f"{ref.name} test split ({len(ref.features)} images)"
        self.settings = {"samples": self.n, "reference": reference,
                         "feature_net_test_accuracy": ref.info["test_accuracy"], "neighbours_k": NEIGHBOURS}
        if self.n < n:  # said, not silently ignored: a small set caps the sample count
            self.settings["samples_capped"] = (f"{n} asked; {self.n} scored, as many as the real images the floor "
                                               f"is read from, so the two columns compare equal counts")

    @torch.no_grad()
    def embed(self, samples: Tensor) -> tuple[Tensor, Tensor | None]:
        """(features, class probabilities or None without classes) of samples in [-1, 1]."""
        feats = torch.cat([self.net.features(x.float()) for x in samples.split(1000)])
        return feats, self.net.classify(feats) if self.n_classes else None

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
                  **metrics.prdc(real, feats, NEIGHBOURS, real_radii=radii)}
        if probs is None:  # no classes in this feature space
            return scores, {}
        scores.update(metrics.class_metrics(probs))
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
            hits = hit_rates(pred, labels, self.n_classes)
            fds = [metrics.frechet_distance(feats[labels == c], self.ref.features[self.ref.labels == c])
                   if min(int((labels == c).sum()), int((self.ref.labels == c).sum())) > 1 else math.nan
                   for c in range(self.n_classes)]  # a class needs two samples and two held-out images
            per_class.update({"hit_rate": hits, "fd": fds})
            scores.update({"hit_rate": _nanmean(hits), "intra_fd": _nanmean(fds)})
        return scores, per_class

    def real(self, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
        return real_draw(self.data, n, seed)

    @torch.no_grad()
    def class_floor(self, n: int, conditional: bool) -> tuple[dict[str, float], int]:
        """The class metrics (classes, class KL, confidence, confident; with labels the hit rate) of up to n
        held-out reference images, and their count: the classifier learnt the training images, so they
        read far better than a new image of the same classes does (Twitter's emoji: 0.97 against 0.60).
        Empty without classes."""
        if not self.n_classes:
            return {}, 0
        idx = torch.randperm(len(self.ref.features), generator=torch.Generator().manual_seed(1))[:n]
        feats, labels = self.ref.features[idx], self.ref.labels[idx]
        probs = self.net.classify(feats)
        scores = metrics.class_metrics(probs)
        if conditional:
            scores["hit_rate"] = _nanmean(hit_rates(probs.argmax(1), labels, self.n_classes))
        return scores, len(idx)


def class_draws(n: int, n_classes: int, labels: Tensor | None, seed: int) -> Tensor:
    """The classes a conditional G is asked for in a scored set of n: in the data's proportions (each class
    at least twice, for its own FD; the rest by largest remainder), shuffled with `seed`, so the set is
    compared with real data drawn alike; each class in turn where the classes are balanced or unknown."""
    counts = torch.bincount(labels.long().flatten().cpu(), minlength=n_classes)[:n_classes] if labels is not None else None
    if counts is None or len(counts) != n_classes or int(counts.min()) == int(counts.max()) or n < 2 * n_classes:
        return torch.arange(n) % n_classes
    exact = counts.double() / counts.sum() * n
    take = exact.floor().long().clamp(min=2)
    order = (exact - exact.floor()).argsort(descending=True)
    i = 0
    while int(take.sum()) != n:  # hand out what is left, or take back what the minimum of 2 added
        c = order[i % n_classes] if int(take.sum()) < n else int(take.argmax())
        take[c] += 1 if int(take.sum()) < n else -1
        i += 1
    drawn = torch.repeat_interleave(torch.arange(n_classes), take)
    return drawn[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]


def plain_clusters(G: nn.Module) -> bool:
    """Whether G's classes are k-means clusters of the images, not within the set's labels."""
    return bool(G.pseudo_classes) and getattr(G, "class_of", None) is None


def hit_rates(pred: Tensor, labels: Tensor, n_classes: int) -> list[float]:
    """Per class: the share of the images of that label that the classifier reads as it (nan if none)."""
    return [float((pred[labels == c] == c).double().mean()) if (labels == c).any() else math.nan
            for c in range(n_classes)]


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def trained_reference(data: Dataset) -> tuple[nn.Module, features.Reference] | None:
    """A feature network trained on first use (cached) and its test-split reference, for image sets with
    train/test splits and no shipped network: a classifier of the set's classes, or, without labels, a
    network taught which way images are turned (ganrun.metrics.classifier). None without splits."""
    if data.make_split is None or not data.pixels:
        return None
    train, test = data.make_split("train"), data.make_split("test")
    task = "classes" if train.labels is not None and test.labels is not None else "rotation"
    name = f"{data.name}-{data.shape[-1]}px"
    net, info = classifier.load_or_train(name, train, test, task=task)
    with torch.no_grad():
        feats = torch.cat([net.features(to_unit_range(x)) for x in test.images.split(1000)])
    mean, cov = metrics.gaussian_stats(feats)
    name = info.get("dataset", name)  # the set's name when the network was trained (renamed files share a space)
    return net, features.Reference(name, feats, test.labels if task == "classes" else None, mean, cov, info)


def make_suite(data: Dataset, n: int) -> tuple[Suite | None, dict[str, Any]]:
    """The metric suite for a dataset (None when it has none) and the settings that describe it, among
    them `feature_space`: numbers from different spaces are never compared."""
    if data.modes is not None:  # a mixture of known modes: the 2-D protocol
        return PointsSuite(data), {}
    digits = data.digits  # Stacked MNIST: a suite over each channel's digit
    shipped = features.shipped((digits if digits is not None else data).name)
    if shipped and data.shape[0] in (1, 3):
        net, ref = features.load(shipped)
        about = {"features": f"ganrun/metrics/weights/{shipped}.pt (FeatureNet-{features.FEATURES}, shipped)",
                 "feature_space": f"{shipped} FeatureNet (shipped)",
                 "weights_sha256": features.SHIPPED.get(shipped, "")}
        if digits is not None:
            return StackedSuite(data, net, ref.info), about
        if data.shape[0] == 1:
            return ImageSuite(data, net, ref, n), about
    if data.held_out and len(data.make_split("test")) < MIN_REFERENCE:
        return None, {"skipped": f"too few images for metrics: {len(data)} (a held-out reference of at least "
                                 f"{MIN_REFERENCE} needs {5 * MIN_REFERENCE} or more)"}
    trained = trained_reference(data)
    if trained is None:
        return None, {"skipped": "no train/test splits for this dataset"}
    net, ref = trained
    task, sha = ref.info.get("task", "classes"), ref.info["weights_sha256"]
    what = "its classes" if task == "classes" else "which way each image is turned (self-supervised)"
    about = {"features": f"SmallCNN-{classifier.FEATURES} penultimate, trained on first use on {ref.name}: {what}",
             "feature_space": f"{ref.name} SmallCNN {task} {sha[:8]}", "weights_sha256": sha}
    return ImageSuite(data, net, ref, n), about


class Evaluator:
    """Built once per run (lazily: a classifier may need training); call it with G, or score a set."""

    def __init__(self, data: Dataset, n_images: int = 5000):
        self.data = data
        self.suite, about = make_suite(data, n_images)
        self.n = self.suite.n if self.suite else n_images
        self.settings: dict[str, Any] = {**(self.suite.settings if self.suite else {"samples": self.n}), **about}
        self.per_class: PerClass = {}  # of the last scored set
        self.class_names = class_names(getattr(data, "inner", data))  # the labels' names (clusters have none)
        self._floors: dict[tuple[int, bool], dict[str, float]] = {}

    @torch.no_grad()
    def samples(self, G: nn.Module, z: Tensor | None, seed: int) -> tuple[Tensor, Tensor | None]:
        """n samples of G in eval mode on the CPU, from z or from n fresh z drawn with `seed`; and for a
        conditional G the classes asked for (in the data's proportions: class_draws)."""
        if z is None or len(z) != self.n:
            z = noise(G, self.n, generator=torch.Generator().manual_seed(seed))
        device = next(G.parameters()).device
        labels, inputs = self.classes(G, len(z), seed)
        chunks = []
        with eval_mode(G):
            for i in range(0, len(z), 1000):
                part = z[i:i + 1000].to(device)
                chunks.append(G(part) if inputs is None else G(part, inputs[i:i + 1000].to(device)))
        if plain_clusters(G):
            labels = None  # drawn from every cluster in turn, scored as one set
        return torch.cat([c.float().cpu() for c in chunks]), labels

    def classes(self, G: nn.Module, n: int, seed: int) -> tuple[Tensor | None, Tensor | None]:
        """(the classes a conditional G is asked for in a scored set of n, in the data's proportions:
        class_draws; G's class inputs for them); (None, None) for an unconditional G."""
        if not G.n_classes:
            return None, None
        known = None if plain_clusters(G) else getattr(self.data, "labels", None)
        labels = class_draws(n, asked_classes(G), known, seed)
        return labels, class_inputs(G, labels, seed)

    def floor(self, n: int, conditional: bool) -> dict[str, float]:
        """The suite's scores of n real samples (with their labels when conditional): what real data gets."""
        key = (n, conditional)
        if key not in self._floors:
            real, labels = self.suite.real(n, seed=1)
            self._floors[key] = self.suite.score(real, labels if conditional else None)[0]
            self.settings["real"] = f"{len(real)} real training samples, scored alike"
            held, count = self.suite.class_floor(n, conditional)
            if held:  # what the classifier reads from images it never saw, not from those it learnt
                self._floors[key].update(held)
                self.settings["real"] += f"; {', '.join(held)} on {count} held-out images"
        return self._floors[key]

    def score(self, samples: Tensor, labels: Tensor | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """(scores, floor): a sample set's metrics and real data's at the same n; per-class lists in per_class."""
        if self.suite is None:
            return {}, {}
        scores, self.per_class = self.suite.score(samples, labels)
        if self.per_class and self.class_names:  # which class each entry is, where the set's classes have names
            self.per_class = {"class_names": self.class_names, **self.per_class}
        return scores, self.floor(len(samples), labels is not None)

    @torch.no_grad()
    def inception(self, samples: Tensor, weights: str) -> dict[str, float]:
        """Inception FID / KID of samples in [-1, 1] against as many real images: the held-out reference of a
        user's set, else the training images (see metrics.inception_scores)."""
        source = self.data.make_split("test") if self.data.held_out else self.data
        real = source.draw(len(samples), 0)[0].float().div(255)
        scores = metrics.inception_scores(images.to_unit(samples[:len(real)]), real, weights)
        self.settings.update({"inception": "Inception-v3 pool features (2048-d, the FID weights), torchmetrics FID/KID",
                              "inception_reference": f"{len(real)} {'held-out' if self.data.held_out else 'training'}"
                                                     " images"})
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
            kept, info = rejection.sample(G, D, self.n, torch.Generator().manual_seed(seed),
                                          classes=self.classes(G, self.n, seed)[1])  # the data's class mix
            scores.update({f"drs_{k}": v for k, v in {**self.suite.score(kept)[0], **info}.items()})
            self.per_class = per_class
            self.settings["drs"] = (f"Azadi et al. 2019: keep x ~ G with probability exp(logit D(x) - M), M the max "
                                    f"logit capped at {rejection.BUDGET} expected proposals per sample")
        return scores, floor


# ---------------------------------------------------------------- `ganrun eval`

