"""The one place a composed config becomes objects: data, G and D, the objective (loss and regularizers),
optimizers and precision (`build`), and the callbacks (`build_callbacks`). Past them, nothing reads the
config: every object holds its own settings."""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from ganrun.artifacts.networks import pick_device
from ganrun.config import ConfigError
from ganrun.config.validate import has_discriminator
from ganrun.config.targets import instantiate, optimizer_kwargs, resolve_target
from ganrun.data import Dataset, clusters
from ganrun.data.base import class_names, named_classes
from ganrun.models.build import build_models, is_dcgan, settle_conditional, settle_width
from ganrun.models.vae import Encoder
from ganrun.training.augment import Augmented
from ganrun.training.callbacks import Callback
from ganrun.training.eager import eager
from ganrun.training.experiment import Experiment
from ganrun.training.losses import Loss
from ganrun.training.objectives import Adversarial, VAEObjective
from ganrun.training.precision import Precision, settle_precision
from ganrun.training.regularizers import AuxClassifier, ModeSeeking, Regularizer

log = logging.getLogger(__name__)


def build_optimizer(opt_cfg: DictConfig, params: Any, lr: float,
                    device: torch.device | None = None) -> torch.optim.Optimizer:
    """An optimizer from the `optimizer` node with learning rate `lr`; on CUDA the Adam family's
    fused kernel unless `optimizer.fused` says otherwise. A torch optimizer comes without its hooks for
    torch.compile (training.eager: only G and D are ever compiled), which cost a second of start-up."""
    target = eager(resolve_target(opt_cfg._target_, "optimizer"))
    kwargs = optimizer_kwargs(opt_cfg, target)
    if "fused" in kwargs and kwargs["fused"] is None and device is not None and device.type == "cuda":
        kwargs["fused"] = True
    try:
        return target(params, lr=lr, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer: {e}") from e


def networks(cfg: DictConfig, data: Dataset, device: torch.device,
             model: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """(G, D) of the model node as settled (settled_model) on the device: D behind DiffAugment when
    train.augment is set, channels-last for images (on the CPU too: oneDNN's convolutions are faster in that
    layout, most of all in bfloat16)."""
    G, D = build_models(model, data.shape, data.n_classes, data.pseudo, getattr(data, "class_of", None))
    augment = augment_policy(cfg, data)
    if augment:
        if not data.pixels:
            raise ConfigError("train.augment works on images only; drop it for 2-D point sets")
        D = Augmented(D, augment)
    G, D = G.to(device), D.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
    if cfg.train.channels_last and data.pixels:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    return G, D


def settled_model(cfg: DictConfig, data: Dataset, resume: dict[str, Any] | None) -> dict[str, Any]:
    """The model node as the run builds it: model.conditional and model.width settled (for a resumed run as its
    checkpoint's were)."""
    saved = resume["config"]["model"] if resume is not None else None
    named = named_classes(class_names(data))
    return settle_width(settle_conditional(cfg.model, data, cfg.train.drs, without_labels(cfg, data), saved, named),
                        tuple(data.shape))


def in_colour(data: Dataset) -> bool:
    """Whether a set is colour images (the auto rules treat grey ones apart: they were measured apart)."""
    return bool(data.pixels and data.shape[0] >= 3)


AUTO_AUGMENT = ["translation", "color"]  # train.augment=auto on small image sets
AUTO_AUGMENT_BELOW = 10_000  # images


def augment_policy(cfg: DictConfig, data: Dataset) -> list[str]:
    """train.augment as a list of transforms. auto: DiffAugment's translation and colour for a GAN on a colour
    image set under AUTO_AUGMENT_BELOW images, which D otherwise learns by heart within a default run (on
    3,781 emoji at 32 px it halved the FD at equal time); nothing for larger or grey sets (on the 5,000 grey
    digits of the default run it made the FD 3.8x worse, docs/results.md)."""
    if cfg.train.augment != "auto":
        return list(cfg.train.augment)
    if not (in_colour(data) and len(data) < AUTO_AUGMENT_BELOW and has_discriminator(cfg.model)):
        return []
    log.info("train.augment=auto: %s has %d images, so D sees every image, real or generated, randomly shifted and "
             "recoloured (DiffAugment %s; train.augment=[] turns it off)", data.name, len(data), ",".join(AUTO_AUGMENT))
    return list(AUTO_AUGMENT)


AUTO_MODE_SEEKING = 0.2  # train.mode_seeking=auto on colour images (docs/results.md)
AUTO_MODE_SEEKING_UNTIL = 1000  # ... and its last step on a run conditioned on the set's labels


def mode_seeking(cfg: DictConfig, conditioned_on: str, colour: bool,
                 saved: list[Any] | None = None) -> tuple[float, int]:
    """train.mode_seeking as (weight, until: the last step it applies, 0 for every step). auto, on colour
    images: AUTO_MODE_SEEKING at every step when G is conditioned on clusters of the images (`conditioned_on`
    "clusters"), where each cluster's samples otherwise repeat a few images (on the emoji at 32 and 64 px
    recall doubled on 3 seeds each, FD within the seeds' spread); to step AUTO_MODE_SEEKING_UNTIL when G is
    conditioned on the set's labels ("labels"), where G otherwise draws near-identical images within each
    class for its first ~1,000 steps (on the labelled emoji FD 78 against 97 over 6 seeds, recall 0.52
    against 0.40). 0 on grey sets (on the digits it cost confidence, 0.86 to 0.83), plain GANs, or when
    regularizers=[mode_seeking] already sets the term. `saved`: what auto settled to in the checkpoint a
    run continues, kept as it was."""
    w = cfg.train.mode_seeking
    if w != "auto":
        return float(w), 0
    if saved is not None:
        return float(saved[0]), int(saved[1])
    if not colour or conditioned_on not in ("clusters", "labels") or "mode_seeking" in (cfg.regularizers or {}) \
            or not has_discriminator(cfg.model):
        return 0.0, 0
    if conditioned_on == "clusters":
        log.info("train.mode_seeking=auto: G is conditioned on clusters of colour images, so it is also pushed to "
                 "spread the samples of each cluster (mode seeking, weight %g; train.mode_seeking=0 turns it off)",
                 AUTO_MODE_SEEKING)
        return AUTO_MODE_SEEKING, 0
    log.info("train.mode_seeking=auto: G is conditioned on the labels of colour images, so for its first %d steps "
             "it is also pushed to spread the samples of each class (mode seeking, weight %g; train.mode_seeking=0 "
             "turns it off)", AUTO_MODE_SEEKING_UNTIL, AUTO_MODE_SEEKING)
    return AUTO_MODE_SEEKING, AUTO_MODE_SEEKING_UNTIL


AUTO_AUX_CLASSIFIER = 1.0  # train.aux_classifier=auto on the labels of colour images (docs/results.md)


def aux_classifier(cfg: DictConfig, model: dict[str, Any], conditioned_on: str, colour: bool,
                   resume: dict[str, Any] | None = None) -> float:
    """train.aux_classifier as a weight, and model["class_head"] set where it is on: D then also reads the class
    of each image, real or generated (ClassHead), and G is pushed to make the class asked for readable (AC-GAN's
    auxiliary classifier). auto: AUTO_AUX_CLASSIFIER when G and D are conditioned on the labels of colour images
    (`conditioned_on` "labels"), where it lowered the FD on each of 5 seeds on the labelled emoji and raised the
    per-class hit rate on four; 0 elsewhere (on clusters of the emoji it did not help; grey sets: not measured). A
    number sets the weight for any conditional DCGAN. A resumed run keeps what its checkpoint's was built with."""
    w = cfg.train.aux_classifier
    if resume is not None:  # its config, train.aux_classifier too, is the checkpoint's
        if not resume["config"]["model"].get("class_head"):  # built before the key, or without the head
            return 0.0
        model["class_head"] = True
        return float(resume.get("aux_classifier", AUTO_AUX_CLASSIFIER if w == "auto" else w))
    if w == "auto":
        w = AUTO_AUX_CLASSIFIER if colour and conditioned_on == "labels" and is_dcgan(model) else 0.0
        if w:
            log.info("train.aux_classifier=auto: G and D are conditioned on the labels of colour images, so D also "
                     "reads each image's class and G is pushed to make its class readable (AC-GAN's auxiliary "
                     "classifier, weight %g; train.aux_classifier=0 turns it off)", w)
    w = float(w)
    if w > 0 and not (is_dcgan(model) and model.get("conditional")):
        raise ConfigError(f"train.aux_classifier={w:g}: D reads the class only in a conditional model=dcgan (a "
                          f"labelled dataset, or train.clusters); set train.aux_classifier=0")
    if w > 0:
        model["class_head"] = True
    return w


def conditioned_on(data: Dataset, model: dict[str, Any], k: int, within: bool,
                   resume: dict[str, Any] | None) -> str:
    """What G is conditioned on, for train.mode_seeking=auto: "clusters" of the images (not within labels),
    "labels", or "". A checkpoint written before auto's choice was kept in it continues under the rules of
    its time: mode seeking on plain clusters once train.mode_seeking existed, never on labels."""
    on = "clusters" if k and not within else "labels" if not k and model.get("conditional") and data.n_classes \
        else ""
    if resume is not None and "mode_seeking" not in resume:
        return "clusters" if on == "clusters" and "mode_seeking" in resume["config"].get("train", {}) else ""
    return on


def objective(cfg: DictConfig, D: nn.Module, mode_seeking: tuple[float, int] = (0.0, 0),
              aux: float = 0.0) -> Adversarial | VAEObjective:
    """The step's objective: the loss and the regularizers picked in config, plus mode seeking as
    train.mode_seeking settled (weight, until; a GAN) and the auxiliary classifier's term (weight `aux`), or the
    ELBO (model=vae, whose encoder sits in D's place)."""
    skip = cfg.train.on_nan == "skip"
    regularizers = [instantiate(node, f"regularizers.{name}") for name, node in (cfg.regularizers or {}).items()]
    if mode_seeking[0]:
        regularizers.append(ModeSeeking(mode_seeking[0], until=mode_seeking[1]))
    if aux:
        regularizers.append(AuxClassifier(aux))
    if isinstance(D, Encoder):
        if regularizers:  # a loss recipe's (loss=wgan-gp brings gp): said, not silently dropped
            log.warning("model=vae trains on its ELBO: the loss and regularizers=[%s] are not used",
                        ",".join([*cfg.regularizers, *(["mode_seeking"] if mode_seeking[0] else [])]))
        return VAEObjective(D.elbo, skip)
    loss = instantiate(cfg.loss, "loss")
    if not isinstance(loss, Loss):
        raise ConfigError(f"loss._target_={cfg.loss._target_} is not a ganrun.training.losses.Loss")
    bad = next((name for name, reg in zip(cfg.regularizers or {}, regularizers)
                if not isinstance(reg, Regularizer)), None)
    if bad is not None:
        raise ConfigError(f"regularizers.{bad}._target_ is not a ganrun.training.regularizers.Regularizer")
    named = next((name for name, reg in zip(cfg.regularizers or {}, regularizers) if isinstance(reg, AuxClassifier)),
                 None)
    if named is not None:  # its term needs D's class head, which only train.aux_classifier builds
        raise ConfigError(f"regularizers.{named}: the auxiliary classifier is set by train.aux_classifier=W, which "
                          f"also gives D its class head; drop it from regularizers")
    return Adversarial(loss, regularizers, cfg.train.n_critic, skip)


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    """The callbacks the config names (configs/callbacks/), in its order, the `last` ones (the checkpoints)
    at the end; those whose settings turn them off (an EMA with decay 0) left out."""
    built = []
    for name, node in (cfg.get("callbacks") or {}).items():
        callback = instantiate(node, f"callbacks.{name}")
        if not isinstance(callback, Callback):
            raise ConfigError(f"callbacks.{name}._target_ is not a ganrun.training.callbacks.Callback")
        if callback.active:
            built.append(callback)
    return [c for c in built if not c.last] + [c for c in built if c.last]


def takes_classes(cfg: DictConfig) -> bool:
    """Whether train.clusters=auto may condition this model on clusters: a GAN whose G and D take classes,
    neither packing samples nor filtering them by rejection sampling (those recipes are measured unconditional)."""
    model = cfg.model
    return "conditional" in model and model.get("pack", 1) == 1 and has_discriminator(model) and not cfg.train.drs


def auto_clusters(cfg: DictConfig, data: Dataset) -> int:
    """How many clusters train.clusters=auto fits when the set's labels are not used: clusters.auto_count on an
    image set for a model that takes classes, else 0."""
    if cfg.train.clusters != "auto" or not takes_classes(cfg) or not data.pixels:
        return 0
    return clusters.auto_count(len(data))


def without_labels(cfg: DictConfig, data: Dataset) -> str:
    """What model.conditional=false would train instead of a labelled run, for model.conditional=auto's
    start-up line: on an image set train.clusters=auto fits, self-conditioning on its clusters."""
    k = auto_clusters(cfg, data)
    if not k:
        return "model.conditional=false trains an unconditional GAN"
    return f"model.conditional=false ignores them and conditions G and D on {k} k-means clusters of the images"


def cluster_count(cfg: DictConfig, data: Dataset) -> tuple[int, bool]:
    """(K, within): train.clusters as a number, and whether the clusters are fitted within the set's labels
    (a number on a run that uses them: asking for a class then draws one of its clusters). auto:
    self-conditioning where it helps and fits: an image set of clusters.AUTO_MIN_IMAGES or more whose labels
    the run does not use (it has none, or model.conditional=false), on a GAN whose G and D take classes;
    K = images / 100, within 10-50."""
    model = cfg.model
    labels_used = data.n_classes > 0 and model.get("conditional") is not False and data.pixels
    k = cfg.train.clusters
    if k != "auto":
        return int(k), labels_used and bool(int(k))
    k = 0 if labels_used else auto_clusters(cfg, data)
    if k:
        why = f"{data.name} has no labels" if data.n_classes == 0 else f"{data.name}'s labels are not used"
        log.info("train.clusters=auto: %s, so G and D are conditioned on %d k-means clusters of its images "
                 "(self-conditioning; train.clusters=0 trains a plain unconditional GAN)", why, k)
    return k, False


def build(cfg: DictConfig, resume: dict[str, Any] | None = None) -> Experiment:
    """The experiment from a validated config (for a run that continues the checkpoint `resume`, which only
    settles model.conditional=auto as that run did); build_callbacks gives what runs around its steps."""
    t = cfg.train
    device = pick_device(t.device)
    saved = resume["data"].get("clusters") if resume is not None else None
    data = instantiate(cfg.dataset, "dataset")
    k, within = cluster_count(cfg, data)
    if resume is not None:  # the checkpoint's model is conditional either way: its data entry says which clusters
        within = resume["data"].get("class_of") is not None
    data = clusters.wrap(data, k, t.seed, saved, within)
    model = settled_model(cfg, data, resume)
    on, colour = conditioned_on(data, model, k, within, resume), in_colour(data)
    aux = aux_classifier(cfg, model, on, colour, resume)
    G, D = networks(cfg, data, device, model)
    opt_G = build_optimizer(cfg.optimizer, G.parameters(), cfg.optimizer.lr_g, device)
    opt_D = build_optimizer(cfg.optimizer, D.parameters(), cfg.optimizer.lr_d, device)
    spread = mode_seeking(cfg, on, colour, resume.get("mode_seeking") if resume is not None else None)
    precision = Precision(settle_precision(t.precision, device.type, data.pixels), device.type)
    return Experiment(data, G, D, objective(cfg, D, spread, aux), opt_G, opt_D, device, precision,
                      t.batch_size, t.n_critic, t.seed, t.compile, model, spread, aux)
