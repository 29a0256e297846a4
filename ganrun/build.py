"""The one place a composed config becomes objects: data, G and D, loss, optimizers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from ganrun import clusters
from ganrun.augment import Augmented
from ganrun.config import ConfigError
from ganrun.targets import instantiate, optimizer_kwargs, resolve_target
from ganrun.data import Dataset
from ganrun.losses import Loss
from ganrun.models.vae import Encoder
from ganrun.objectives import Adversarial, VAEObjective

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; cuda without a GPU is a ConfigError."""
    name = getattr(name, "value", name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but torch sees no CUDA GPU; use train.device=auto or cpu")
    return torch.device(name)


def build_models(model_cfg: DictConfig, data_shape: tuple[int, ...], n_classes: int = 0,
                 pseudo: bool = False) -> tuple[nn.Module, nn.Module]:
    """(G, D) from the `model` node for data of `data_shape` (with n_classes, the dataset's class
    count, when the model is conditional). pseudo: the classes are train.clusters' clusters, not labels
    (G.pseudo_classes tells the metrics not to score them as classes)."""
    extra = {"n_classes": n_classes} if model_cfg.get("conditional") else {}
    G, D = instantiate(model_cfg, "model", data_shape=tuple(data_shape), **extra)
    G.pseudo_classes = pseudo
    return G, D


def build_optimizer(opt_cfg: DictConfig, params: Any, lr: float,
                    device: torch.device | None = None) -> torch.optim.Optimizer:
    """An optimizer from the `optimizer` node with learning rate `lr`; on CUDA the Adam family's
    fused kernel unless `optimizer.fused` says otherwise."""
    target = resolve_target(opt_cfg._target_, "optimizer")
    kwargs = optimizer_kwargs(opt_cfg, target)
    if "fused" in kwargs and kwargs["fused"] is None and device is not None and device.type == "cuda":
        kwargs["fused"] = True
    try:
        return target(params, lr=lr, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer: {e}") from e


@dataclass
class Experiment:
    """Everything a training run needs, built from one config."""

    data: Dataset
    G: nn.Module
    D: nn.Module
    loss: Loss
    objective: Any  # what one training step does: objectives.Adversarial, or VAEObjective for model=vae
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    device: torch.device


def resolve_conditional(cfg: DictConfig, data: Dataset, resume: dict[str, Any] | None = None) -> None:
    """model.conditional=auto becomes true when the dataset has class labels (and D neither packs samples
    nor filters them by rejection sampling, which need an unconditional G), else false; checkpoints keep
    the resolved value, and a resumed run (`resume`: its checkpoint) keeps what auto chose when it began."""
    if cfg.model.get("conditional") != "auto":
        return
    if getattr(data, "pseudo", False):
        cfg.model.conditional = True
        return
    if resume is not None:
        cfg.model.conditional = bool(resume["config"]["model"].get("conditional", False))
        return
    use = data.kind == "image" and data.n_classes >= 2 and cfg.model.get("pack", 1) == 1 and not cfg.train.drs
    cfg.model.conditional = bool(use)
    if use:
        log.info("model.conditional=auto: G and D see the dataset's %d class labels (model.conditional=false "
                 "trains an unconditional GAN)", data.n_classes)


def build(cfg: DictConfig, resume: dict[str, Any] | None = None) -> Experiment:
    """Build data, models (on the device), loss and optimizers from a validated config (for a run that
    continues the checkpoint `resume`, which only settles model.conditional=auto as that run did)."""
    device = pick_device(cfg.train.device)
    saved = resume["data"].get("clusters") if resume is not None else None
    data = clusters.wrap(instantiate(cfg.dataset, "dataset"), cfg.train.clusters, cfg.train.seed, saved)
    resolve_conditional(cfg, data, resume)
    G, D = build_models(cfg.model, data.shape, data.n_classes, bool(cfg.train.clusters))
    if cfg.train.augment:
        if data.kind != "image":
            raise ConfigError("train.augment works on images only; drop it for 2-D point sets")
        D = Augmented(D, list(cfg.train.augment))
    G, D = G.to(device), D.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
        if cfg.train.channels_last and data.kind == "image":
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    loss = instantiate(cfg.loss, "loss")
    if not isinstance(loss, Loss):
        raise ConfigError(f"loss._target_={cfg.loss._target_} is not a ganrun.losses.Loss")
    opt_G = build_optimizer(cfg.optimizer, G.parameters(), cfg.optimizer.lr_g, device)
    opt_D = build_optimizer(cfg.optimizer, D.parameters(), cfg.optimizer.lr_d, device)
    # model=vae: the decoder sits in G's place, the encoder in D's, and the step minimises the ELBO
    objective = VAEObjective(D.elbo) if isinstance(D, Encoder) else Adversarial(loss)
    return Experiment(data, G, D, loss, objective, opt_G, opt_D, device)
