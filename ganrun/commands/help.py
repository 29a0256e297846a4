"""`ganrun --version` and `ganrun COMMAND --help`: every key a command takes, its default and a one-line
meaning, read from the schemas' and config files' own comments (so the help cannot drift from the code)."""

from __future__ import annotations

import inspect
import re
from importlib import metadata, resources
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ganrun.config import schema

REFERENCE = "the full reference: docs/configs.md in the ganrun repository"
LISTED = ("regularizers", "logger")  # groups that take several options at once (logger=[tensorboard,wandb])
COMMANDS = {"sample": "sample", "eval": "evaluate", "export": "export", "report": "report"}  # command -> its module
ABOUT = {  # command -> (usage, what it does, the schema of its keys)
    "sample": ("ganrun sample ckpt=PATH [key=value ...]", "Renders G's samples from a checkpoint: a grid, an "
               ".npy, a folder of PNGs or (mode=interp) an interpolation GIF.", schema.SampleConfig),
    "eval": ("ganrun eval ckpt=PATH|samples=PATH [key=value ...]", "Scores a checkpoint (or saved samples) with "
             "the quality metrics, beside real data's own scores; prints a table and writes JSON.", schema.EvalConfig),
    "export": ("ganrun export ckpt=PATH format=safetensors|torchscript|onnx [out=FILE]", "Writes the generator "
               "alone, for sharing and for use without ganrun.", schema.ExportConfig),
}
_COMMENTED = re.compile(r"^(\s*)([A-Za-z_]\w*)\s*:[^#]*?(?:#\s*(.*))?$")  # `key: ...  # meaning`


# meanings of keys that many option files share (a comment in the file itself wins)
GLOSSARY = {
    "dataset.image_size": "images are resized to this many pixels a side",
    "dataset.root": "the folder holding the files (read there; downloaded there when download=true)",
    "dataset.download": "fetch the files into root when they are missing (needs internet)",
    "dataset.split": "train or test",
    "dataset.sigma": "standard deviation of each Gaussian mode",
    "dataset.channels": "1 grey, 3 RGB, 0: RGB when any image is in colour, else grey",
    "dataset.background": "colour under transparent pixels: a name, '\"#rrggbb\"', a grey level or [r,g,b]",
    "dataset.path": "the file or folder to read (a .zip; a save_to_disk folder, parquet files or a Hub name)",
    "dataset.image_column": "the column holding the images",
    "dataset.label_column": "the column holding class labels (null: unlabelled; auto: `label`, else the one ClassLabel column, else none)",
    "dataset.workers": "DataLoader processes decoding images (auto: 2, or 0 where the run may use one CPU only)",
    "dataset.n": "how many samples the set holds",
    "dataset.seed": "seeds how the set is drawn",
    "dataset.side": "modes per side of the grid",
    "dataset.spacing": "distance between neighbouring modes",
    "dataset.radius": "radius of the ring of modes",
    "dataset.n_modes": "number of modes on the ring",
    "dataset.means": "the mixture's means",
    "dataset.source": "where the digits come from",
    "model.latent_dim": "size of z, G's input noise",
    "model.width": "channels of G's last and D's first conv layer (the others 2x, 4x, ...); auto: 64 at 28 px, 40 at 32 px, 32 at 64 px",
    "model.hidden": "hidden layer sizes of G and D",
    "model.toy_hidden": "hidden layer sizes used instead on 2-D toy sets",
    "model.spectral_norm": "spectral normalisation on D's layers (a 1-Lipschitz critic)",
    "model.d_norm": "normalisation in D: batch, layer or none",
    "model.d_dropout": "dropout in D (0: off)",
    "loss.real_label": "D's target for real samples (0.9: one-sided label smoothing)",
    "loss.flip_prob": "share of D's labels flipped each step (label noise)",
    "logger.wandb.project": "the W&B project the run goes to",
    "logger.wandb.group": "groups runs in the W&B interface (e.g. one sweep)",
    "logger.wandb.tags": "labels shown beside the run in W&B",
}


def version() -> str:
    try:
        return f"ganrun {metadata.version('ganrun')}"
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "ganrun (not installed)"


def comments(lines: list[str], indent: int) -> dict[str, str]:
    """key -> its trailing comment, for the `key: ...  # comment` lines indented by `indent` spaces."""
    out = {}
    for line in lines:
        m = _COMMENTED.match(line)
        if m and len(m.group(1)) == indent:
            out[m.group(2)] = (m.group(3) or "").strip()
    return out


def schema_comments(schema: type) -> dict[str, str]:
    """A dataclass's field -> the comment on its line."""
    return comments(inspect.getsource(schema).splitlines(), indent=4)


def table(rows: list[tuple[str, str, str]]) -> str:
    """`  key=default   meaning` lines, aligned."""
    width = max((len(f"{k}={v}") for k, v, _ in rows), default=0)
    return "\n".join(f"  {f'{k}={v}'.ljust(width)}  {m}".rstrip() for k, v, m in rows)


def as_text(value: Any) -> str:
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=False)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(getattr(value, "value", value))


def schema_help(usage: str, schema: type, about: str) -> str:
    """The help of a key=value subcommand (sample, eval, export) from its dataclass."""
    meaning = schema_comments(schema)
    defaults = OmegaConf.structured(schema)
    rows = [(k, "PATH" if OmegaConf.is_missing(defaults, k) else as_text(defaults[k]), meaning.get(k, ""))
            for k in defaults]
    return f"usage: {usage}\n\n{about}\n\nkeys (key=default  meaning):\n{table(rows)}\n"


def node_rows(node: DictConfig, prefix: str, meaning: dict[str, str]) -> list[tuple[str, str, str]]:
    """key=value rows of one config node: the meaning from its file's comment, else the glossary."""
    return [(f"{prefix}.{k}", as_text(node[k]) if not OmegaConf.is_missing(node, k) else "???",
             meaning.get(str(k)) or GLOSSARY.get(f"{prefix}.{k}", "")) for k in node if not str(k).startswith("_")]


def train_help(overrides: list[str]) -> str:
    """`ganrun train [overrides] --help`: the groups and their options, then every key of the config these
    overrides compose (defaults included), with its value and meaning."""
    from ganrun import config

    cfg = config.compose(overrides, hydra_node=True)
    choices = cfg.hydra.runtime.choices
    lines = ["usage: ganrun train [group=option ...] [key=value ...] [-m for a sweep] [--cfg job]", "",
             "Trains a GAN into a run folder (TensorBoard logs, sample grids, checkpoints, summary.json).",
             "Pick one option per group; set any key below; -m sweeps comma-separated values.", "",
             "groups (the chosen one marked *):"]
    for group in config.GROUPS:
        picked = cfg.get(group) if group in LISTED else None  # a list-valued group: one node per pick
        chosen = [str(c) for c in picked] if picked is not None else [str(choices.get(group))]
        lines.append(f"  {group}: " + ", ".join(o + "*" * (o in chosen) for o in config.option_files(group)))
    lines.append("  (regularizers and logger take several: regularizers=[r1,lecam] logger=[tensorboard,wandb])")
    rows: list[tuple[str, str, str]] = []
    for group in ("dataset", "model", "loss"):
        source = resources.files("ganrun.configs").joinpath(group, f"{choices[group]}.yaml").read_text()
        indent = 2 if source.lstrip().startswith("# @package _global_") else 0  # losses nest under `loss:`
        rows += node_rows(cfg[group], group, comments(source.splitlines(), indent))
    rows += node_rows(cfg.train, "train", schema_comments(config.TrainConfig))
    rows += node_rows(cfg.optimizer, "optimizer", schema_comments(config.OptimizerConfig))
    for group in ("regularizers", "logger"):  # the picked ones' keys, with the comments of their files
        for name in cfg.get(group) or {}:
            source = resources.files("ganrun.configs").joinpath(group, f"{name}.yaml")
            meaning = comments(source.read_text().splitlines(), 2) if source.is_file() else {}
            rows += node_rows(cfg[group][name], f"{group}.{name}", meaning)
    top = schema_comments(config.Config)
    rows += [(k, as_text(cfg[k]), top.get(k, "")) for k in ("name", "objective", "resume", "plugins")]
    lines += ["", f"keys with the values these choices give ({REFERENCE}):", table(rows), "",
              "ganrun train --cfg job prints the composed config; --hydra-help shows Hydra's own flags."]
    return "\n".join(lines) + "\n"


REPORT = """usage: ganrun report DIR [out=PREFIX] [by=KEY [metric=fd] [ref=VALUE]]

Every run under DIR (one run, a sweep, or all of outputs/) as a table: overrides, status, final losses
and metrics (distances beside real data's floor), wall time, and the error of a failed run.

keys (key=default  meaning):
  DIR                a run folder, a sweep folder or outputs/ (searched recursively)
  out=DIR/report     writes PREFIX.md, PREFIX.csv and PREFIX.png (curves of losses and metrics per run)
  by=KEY             groups the runs by override KEY (by=loss): each group's best score after k trials
  metric=fd          the score by= ranks (fd where the runs have it)
  ref=VALUE          the group the others' best is compared with (bootstrap interval, U test); default: the best
"""
