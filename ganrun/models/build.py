"""The one way a `model` config node becomes (G, D): the architecture's factory with the data's shape and,
for a conditional model, the dataset's class count. Training and the commands that rebuild a checkpoint's
networks both call it."""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ganrun.config.targets import instantiate
from ganrun.models import dcgan, resnet
from ganrun.models.common import auto_conditional

log = logging.getLogger(__name__)


def build_models(model_cfg: DictConfig | dict[str, Any], data_shape: tuple[int, ...], n_classes: int = 0,
                 pseudo: bool = False, class_of: Any = None) -> tuple[nn.Module, nn.Module]:
    """(G, D) from the `model` node for data of `data_shape` (with n_classes, the dataset's class
    count, when the model is conditional). pseudo: the classes are train.clusters' clusters, not labels
    (G.pseudo_classes tells the metrics not to score them as classes); class_of: for clusters fitted within
    the labels, each cluster's class (G.class_of: the classes a user asks for, see common.class_inputs).
    Every G says what it draws: latent_dim and latent (z's size and prior), n_classes (0: unconditional),
    pseudo_classes, class_of (None but for clusters within labels)."""
    model_cfg = OmegaConf.create(model_cfg) if isinstance(model_cfg, dict) else model_cfg
    extra = {"n_classes": n_classes} if model_cfg.get("conditional") else {}
    G, D = instantiate(model_cfg, "model", data_shape=tuple(data_shape), **extra)
    G.pseudo_classes = pseudo
    G.class_of = torch.as_tensor(class_of).long().cpu() if class_of is not None else None
    return G, D


def is_dcgan(node: dict[str, Any]) -> bool:
    """Whether a model node builds the DCGAN (ganrun.models.dcgan.make)."""
    return str(node.get("_target_", "")).endswith("dcgan.make")


def check_image_size(node: Any, image_size: Any) -> None:
    """The size check model=dcgan or model=resnet makes when built, made on dataset.image_size (a set resized to
    it) before any data is read, so a size the model cannot take leaves no run folder."""
    if not isinstance(image_size, int) or isinstance(image_size, bool):
        return
    if is_dcgan(node):
        dcgan.check_size(image_size, image_size)
    elif str(node.get("_target_", "")).endswith("resnet.make"):
        resnet.check_size(image_size, image_size)


def settle_width(node: dict[str, Any], data_shape: tuple[int, ...]) -> dict[str, Any]:
    """model.width=auto of the DCGAN settled from the image shape (dcgan.auto_width) and said in one line, so
    the run's record and checkpoint hold the number it trained with."""
    if (node.get("width") != "auto" or not is_dcgan(node)
            or len(data_shape) != 3 or data_shape[-1] not in dcgan.SIZES):  # other sizes: make() says which it takes
        return node
    node["width"] = dcgan.auto_width(data_shape)
    shape = "x".join(map(str, data_shape))
    if node.get("g_width") is not None:  # a narrower or wider G: the step costs what it costs
        log.info("model.width=auto: %d for D on %s images, beside G's model.g_width=%s", node["width"], shape,
                 node["g_width"])
    else:
        log.info("model.width=auto: %d for %s images, so each step costs about what the default run's does "
                 "(model.width=64 for the full DCGAN)", node["width"], shape)
    return node


def settle_conditional(model: DictConfig, data: Any, drs: bool, instead: str,
                       saved: dict[str, Any] | None = None, named: str = "") -> dict[str, Any]:
    """The `model` node as a run builds it (plain containers), with model.conditional=auto settled: true on
    train.clusters' clusters, what a resumed run's checkpoint (`saved`: its model node) settled on, else
    auto_conditional's rule, said in one line that names the classes (`named`: "0 cats, 1 dogs", where they have
    names) and ends with `instead`: what the run would train without the labels. The config itself is left as
    it was."""
    node = OmegaConf.to_container(model, resolve=True)
    if data.pseudo:  # the clusters replace the labels, also under model.conditional=false (no real labels)
        node["conditional"] = True
    elif node.get("conditional") != "auto":
        return node
    elif saved is not None:
        node["conditional"] = bool(saved.get("conditional", False))
    else:
        node["conditional"] = auto_conditional(data.n_classes, node.get("pack", 1), drs, data.pixels)
        if node["conditional"]:
            log.info("model.conditional=auto: G and D see the dataset's %d class labels%s (%s)", data.n_classes,
                     f", {named}" if named else "", instead)
    return node
