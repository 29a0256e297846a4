"""Tab completion for bash and zsh: `eval "$(ganrun --completion bash)"` (or zsh) installs a function
that asks `ganrun --complete LINE` for the candidates of the line typed so far: subcommands, config
groups and their options, every key of the config that line composes, and file paths for path keys."""

from __future__ import annotations

import glob
import os
import sys

COMMANDS = ("train", "sample", "eval", "export", "report")
FLAGS = ("--help", "--version", "--completion")
PATH_KEYS = ("ckpt", "out", "samples", "labels", "inception_weights", "resume", "dataset.root", "dataset.path",
             "hydra.run.dir", "hydra.sweep.dir")

BASH = r"""_ganrun_complete() {
    local IFS=$'\n'
    COMPREPLY=($(ganrun --complete "${COMP_LINE:0:$COMP_POINT}" "${COMP_WORDS[COMP_CWORD]}" 2>/dev/null))
}
complete -o nospace -o default -F _ganrun_complete ganrun
"""
ZSH = r"""_ganrun_complete() {
    local -a candidates
    candidates=("${(@f)$(ganrun --complete "${(j: :)words[1,CURRENT]}" 2>/dev/null)}")
    compadd -S '' -- ${candidates:#}
}
compdef _ganrun_complete ganrun
"""
SCRIPTS = {"bash": BASH, "zsh": ZSH}


def script(shell: str) -> str:
    if shell not in SCRIPTS:
        raise ValueError(f"--completion {shell}: use bash or zsh")
    return SCRIPTS[shell]


def candidates(line: str) -> list[str]:
    """Every completion of the last word of `line` (a whole word: `model=dc` -> `model=dcgan`)."""
    words = line.split()
    if line.endswith(" ") or not words:
        words.append("")
    current, before = words[-1], words[1:-1]  # words[0] is the program
    if not before:
        found = [c + " " for c in COMMANDS] + list(FLAGS)
    elif before[0] == "train":
        found = train_candidates(current, before[1:])
    elif before[0] in ("sample", "eval", "export"):
        found = command_candidates(before[0])
    elif before[0] == "report":
        found = ["out=", "--help"]
    else:
        found = []
    key, _, value = current.partition("=")
    if "," in value:  # a sweep's next value: model=mlp,dc -> model=mlp,dcgan
        head = current[:current.rindex(",") + 1]
        found += [head + c.split("=", 1)[1] for c in found if c.startswith(key + "=") and c != key + "="]
    if "=" in current and (key in PATH_KEYS or before[:1] == ["report"]):
        found += [f"{key}={p}" + "/" * os.path.isdir(p) for p in glob.glob(current.split("=", 1)[1] + "*")]
    elif before[:1] == ["report"]:
        found += [p + "/" for p in glob.glob(current + "*") if os.path.isdir(p)]
    return sorted(c for c in set(found) if c.startswith(current) and c != current)


def values(key: str, annotation: str = "") -> list[str]:
    """The fixed choices of a key, as `key=value` candidates: booleans, devices and the listed options."""
    from ganrun import config

    choices = {"train.device": config.DEVICES, "device": config.DEVICES, "train.precision": config.PRECISIONS,
               "train.lr_schedule": config.LR_SCHEDULES, "train.on_nan": config.ON_NAN,
               "format": config.EXPORT_FORMATS, "mode": config.SAMPLE_MODES}.get(key, ())
    if "bool" in annotation:
        choices = ("true", "false")
    return [f"{key}={c}" for c in choices]


def command_keys(command: str) -> dict[str, str]:
    """The keys of a subcommand's schema (ganrun.config.schema: no torch to import) and their types, as text."""
    import dataclasses

    from ganrun.commands.help import ABOUT

    return {f.name: str(f.type) for f in dataclasses.fields(ABOUT[command][2])}


def command_candidates(command: str) -> list[str]:
    """`key=` for every key of sample / eval / export, and the values of keys with fixed choices."""
    from ganrun.config import option_files

    keys = command_keys(command)
    found = [f"{k}=" for k in keys] + ["--help"]
    for key, annotation in keys.items():
        found += values(key, annotation)
    if command == "eval":  # samples=... dataset=NAME: the dataset options
        found += [f"dataset={o}" for o in option_files("dataset")]
    return found


def train_candidates(current: str, before: list[str]) -> list[str]:
    """Groups (`model=`), their options (`model=dcgan`), and the keys of the config the words typed so far
    compose (`model.width=`, with its value once the key is complete, or its fixed choices)."""
    from omegaconf import OmegaConf

    from ganrun.commands import help
    from ganrun.config import GROUPS, ConfigError, compose, flat_items, option_files

    found = [f"{g}=" for g in GROUPS] + [f"{g}=" + o for g in GROUPS for o in option_files(g)]
    found += ["-m", "--help", "--cfg", "hydra.run.dir=", "hydra.sweep.dir="]
    try:
        cfg = compose([w for w in before if "=" in w and not w.startswith(("hydra", "-"))])
    except ConfigError:  # a half-typed override earlier on the line: offer the groups alone
        return found
    keys = flat_items(OmegaConf.to_container(cfg, resolve=False))
    keys = {k: v for k, v in keys.items() if "._" not in k}
    found += [f"{k}=" for k in keys]
    key = current.split("=", 1)[0]
    if "=" in current and key in keys:
        value = OmegaConf.select(cfg, key)
        found += [f"{key}={help.as_text(value)}", *values(key, "bool" if isinstance(value, bool) else "")]
    return found


WORD_BREAKS = "=:"  # where bash's readline starts the word it replaces (COMP_WORDBREAKS)


def answer(line: str, word: str | None = None) -> None:
    """Print one candidate per line. With `word` (bash), each candidate is cut to what readline replaces:
    the text after the current token's last `=` or `:` (bash's word breaks), so `loss=` + TAB gives
    `loss=gan`, not `loss==gan`."""
    current = "" if line.endswith(" ") or not line.split() else line.split()[-1]
    cut = max(current.rfind(c) for c in WORD_BREAKS) + 1 if word is not None else 0
    for c in candidates(line):
        sys.stdout.write(c[cut:] + "\n")
