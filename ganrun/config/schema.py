"""The typed schemas: `train`, `optimizer`, the top level and each tracker of `ganrun train` (Hydra rejects
an unknown key or a wrong type there while composing), the keys of `ganrun sample`, `eval` and `export`,
and the fixed choices of keys. Plain dataclasses: nothing here imports torch."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from omegaconf import MISSING

from ganrun.errors import ConfigError  # noqa: F401  (re-exported: the config checks raise it)

LR_SCHEDULES = ("constant", "linear", "cosine")
PRECISIONS = ("auto", "32", "bf16", "fp16")
ON_NAN = ("stop", "skip")
DEVICES = ("auto", "cpu", "cuda")
EXPORT_FORMATS = ("safetensors", "torchscript", "onnx")  # `ganrun export format=`
SAMPLE_MODES = ("sample", "interp")  # `ganrun sample mode=`
AUGMENTATIONS = ("color", "translation", "cutout", "flip")  # train.augment: ganrun.training.augment.POLICIES


class Device(enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@dataclass
class TrainConfig:
    steps: int = 2000  # G updates
    batch_size: int = 64  # samples per D and G step
    n_critic: int = 1  # D updates per G update
    seed: int = 0  # seeds weights, data order, z and the preview noise
    device: Device = Device.auto  # auto (CUDA when there is one), cpu or cuda
    log_every: int = 50  # losses and stats to TensorBoard (the only host syncs)
    sample_every: int = 500  # sample grid from a fixed z
    eval_every: int = 0  # quality metrics to TensorBoard and the summary; 0: only at the end
    eval_n: int = 5000  # samples per evaluation of an image model (toy sets: always 2,500)
    ckpt_every: int = 1000  # checkpoints/step_NNNNNN.pt (last.pt is rewritten then too); 0: only at the end
    n_samples: int = 64  # images in each sample grid (the toy sets plot 2,500 points)
    augment: Any = "auto"  # DiffAugment for D's inputs, a list of color, translation, cutout, flip ([]: none; auto: [translation, color] on colour image sets under 10,000 images)
    ada_target: float = 0.0  # adaptive augmentation: p follows E[sign D(real)] towards this (0.6 in the paper); 0: off
    ada_kimg: int = 100  # ADA: thousands of real images for p to move from 0 to 1
    precision: str = "32"  # 32, bf16 (autocast), fp16 (autocast + a gradient scaler per network); auto: bf16 on a CPU with native bfloat16
    compile: bool = False  # torch.compile G and D for the training step (falls back to eager if it fails)
    channels_last: bool = True  # conv models use the channels-last memory layout
    sync_bn: bool = False  # torchrun on GPUs: BatchNorm statistics over all ranks' batches (SyncBatchNorm)
    lr_schedule: str = "constant"  # constant, or linear / cosine decay of both learning rates to 0 at train.steps
    ema: float = 0.0  # decay of an exponential moving average of G's weights (0: off); samples use it
    ema_rampup: float = 0.05  # EMA warm-up: its half-life is at most this share of the steps so far (0: off)
    drs: bool = False  # discriminator rejection sampling: D filters G's samples in metrics and `ganrun sample`
    clusters: Any = "auto"  # self-conditioning: G and D conditioned on K equal-size k-means clusters of the images, a number fitted within the classes when the labels are used (auto: when no labels are used and the set has 500+ images, K = images / 100 within 10-50; 0: off)
    mode_seeking: Any = "auto"  # weight of mode seeking (MSGAN) on G within each cluster: auto: 0.2 when G is conditioned on clusters of colour images without labels (train.clusters), 0.2 to step 1000 on the labels of colour images, else 0; a number sets it (regularizers=[mode_seeking] is the same term with the paper's weight)
    aux_classifier: Any = "auto"  # weight of an auxiliary classifier in a conditional DCGAN's D (AC-GAN: D also reads each image's class, G is pushed to make the class asked for readable): auto: 1 when G and D are conditioned on the labels of colour images, else 0; a number sets it
    on_nan: str = "stop"  # stop: end the run naming the step and loss; skip: drop that update and go on
    progress: bool = True  # progress bar on a terminal (never when output is not a TTY)


@dataclass
class OptimizerConfig:
    """One schema for every optimizer; each class gets the keys its constructor takes, so a loss
    recipe's Adam betas do not break `optimizer=rmsprop` (RMSprop has no betas and ignores them)."""

    _target_: str = "torch.optim.Adam"
    lr_g: float = 2e-4  # G's learning rate (the loss's recipe sets it unless given)
    lr_d: float = 2e-4  # D's learning rate
    betas: Tuple[float, float] = (0.5, 0.999)  # Adam family
    alpha: float = 0.99  # RMSprop smoothing
    momentum: float = 0.0  # RMSprop, SGD
    eps: float = 1e-8  # added to the denominator (Adam, RMSprop)
    weight_decay: float = 0.0  # L2 penalty on both networks' weights
    fused: Optional[bool] = None  # Adam family: one fused kernel per step (null: on for CUDA, off on CPU)


@dataclass
class Config:
    dataset: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    resume: str = ""  # a run folder or checkpoint to continue (its folder is reused unless hydra.run.dir is given)
    plugins: List[str] = field(default_factory=list)  # your own packages configs may name targets in, e.g. [mylab]
    logger: Dict[str, Any] = field(default_factory=dict)  # the trackers picked with logger=[...], one node each
    regularizers: Dict[str, Any] = field(default_factory=dict)  # picked with regularizers=[r1,...], one node each
    callbacks: Dict[str, Any] = field(default_factory=dict)  # what fit() does around each step, one node each
    objective: str = "auto"  # what a sweeper (hydra/sweeper=optuna) gets back: a final metric or loss; auto: fd, energy on 2-D sets
    name: str = ""  # a run name: the run goes to outputs/NAME/DATE_TIME instead of outputs/DATE/TIME


# keys users reach for that live under another name (`+optimizer.lr=...` would otherwise be a new, unread key)
RENAMED = {"optimizer.lr": "optimizer.lr_g=X optimizer.lr_d=X (G's and D's learning rates)",
           "train.lr": "optimizer.lr_g=X optimizer.lr_d=X", "train.epochs": "train.steps=N (G updates)",
           "train.iterations": "train.steps=N (G updates)", "seed": "train.seed=N", "steps": "train.steps=N",
           # the regularizers were keys of the losses until they became a list of their own
           "loss.r1_gamma": "regularizers=[r1] regularizers.r1.gamma=X",
           "loss.r2_gamma": "regularizers=[r2] regularizers.r2.gamma=X",
           "loss.dragan_weight": "regularizers=[dragan] regularizers.dragan.weight=X",
           "loss.lecam_weight": "regularizers=[lecam] regularizers.lecam.weight=X",
           "loss.unroll_steps": "regularizers=[unroll] regularizers.unroll.steps=K",
           "loss.top_k": "regularizers=[topk] regularizers.topk.share=NU",
           "loss.gp_weight": "regularizers.gp.weight=X (loss=wgan-gp picks regularizers=[gp])",
           "loss.clip": "regularizers.clip.bound=C (loss=wgan picks regularizers=[clip])"}


# What a resumed run may change: when it stops, how often it logs, samples, scores and saves, where it runs
# and which trackers follow it. Everything else comes from the run's own checkpoint.
RESUME_MAY_CHANGE = ("train.steps", "train.log_every", "train.sample_every", "train.eval_every", "train.eval_n",
                     "train.ckpt_every", "train.n_samples", "train.device", "train.progress", "train.compile",
                     "train.channels_last", "train.on_nan", "logger", "objective", "resume")


GROUPS = ("dataset", "model", "loss", "optimizer", "regularizers", "experiment", "logger", "callbacks")  # `ganrun train`'s


# ---------------------------------------------------------------- the other commands' keys

@dataclass
class SampleConfig:
    ckpt: str = "???"  # a checkpoint file or a run folder (uses its checkpoints/last.pt)
    n: int = 64  # how many samples (mode=interp: how many interpolation rows)
    out: str = "samples.png"  # .png grid (points: scatter; 1-D: the game figure), .npy raw, .gif (interp), DIR/
    seed: int = 0  # fixes z
    seeds: str = ""  # one sample per seed, as StyleGAN does: 0-35, 1,5,9 or 0-3,10 (instead of n and seed)
    nrow: int = 0  # images per grid row; 0: near-square (conditional models: one class per row)
    classes: Optional[List[Any]] = None  # conditional models: these classes (numbers, or the names of a set's sub-folders / label column), one per row (default: all, up to 10)
    mode: str = "sample"  # sample, or interp: spherical interpolation between pairs of latent points
    frames: int = 8  # mode=interp: images per interpolation row (GIF frames: twice that, there and back)
    truncation: float = 0.0  # > 0: redraw every z entry beyond +-truncation (the truncation trick); 0: off
    ema: Optional[bool] = None  # the EMA generator when the checkpoint has one (default), or false: the raw G
    drs: Optional[bool] = None  # D's rejection sampling filters the samples (default: the run's train.drs)
    device: Device = Device.auto  # auto (CUDA when there is one), cpu or cuda


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
    inception: bool = False  # add Inception FID/KID (needs the `inception` extra and its weights, downloaded once)
    inception_weights: str = ""  # a local FID Inception weights file instead of the download (implies inception)
    drs: Optional[bool] = None  # also score D's rejection sampling (drs_* keys); default: the run's train.drs


@dataclass
class ExportConfig:
    ckpt: str = "???"  # a checkpoint file or a run folder
    format: str = "safetensors"  # safetensors, torchscript or onnx
    out: str = ""  # default: generator.<suffix> beside the checkpoint
    ema: Optional[bool] = None  # the EMA generator when the checkpoint has one (default), or false
