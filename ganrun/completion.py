"""Tab completion for bash and zsh: `eval "$(ganrun --completion bash)"` (or zsh) installs a function
that asks `ganrun --complete LINE` for the candidates of the line typed so far: subcommands, config
groups and their options, every key of the config that line composes, and file paths for path keys."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

COMMANDS = ("train", "sample", "eval", "export", "report")
FLAGS = ("--help", "--version", "--completion")
PATH_KEYS = ("ckpt", "out", "samples", "labels", "inception_weights", "resume", "dataset.root", "dataset.path",
             "hydra.run.dir", "hydra.sweep.dir")
GROUPS = ("dataset", "model", "loss", "optimizer", "experiment", "logger")

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
        found = [f"{k}=" for k in command_keys(before[0])] + ["--help"]
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


def command_keys(command: str) -> list[str]:
    """The keys of a subcommand's schema, read from its source (importing it would load torch: seconds)."""
    import ast
    from importlib.util import find_spec

    from ganrun.cli import ABOUT

    module, schema = ABOUT[command][2].split(":")
    tree = ast.parse(Path(find_spec(f"ganrun.{module}").origin).read_text())
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == schema).body
    return [n.target.id for n in body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]


def train_candidates(current: str, before: list[str]) -> list[str]:
    """Groups (`model=`), their options (`model=dcgan`), and the keys of the config the words typed so far
    compose (`model.width=`, with its value once the key is complete)."""
    from omegaconf import OmegaConf

    from ganrun import help

    found = [f"{g}=" for g in GROUPS] + [f"{g}=" + o for g in GROUPS for o in help.option_files(g)]
    found += ["-m", "--help", "--cfg", "hydra.run.dir=", "hydra.sweep.dir="]
    try:
        cfg = compose([w for w in before if "=" in w and not w.startswith(("hydra", "-"))])
    except Exception:  # a half-typed override earlier on the line: offer the groups alone
        return found
    from ganrun.config import flat_items

    keys = [k for k in flat_items(OmegaConf.to_container(cfg, resolve=False)) if "._" not in k]
    found += [f"{k}=" for k in keys]
    if "=" in current and current.split("=", 1)[0] in keys:
        value = OmegaConf.select(cfg, current.split("=", 1)[0])
        found.append(f"{current.split('=', 1)[0]}={help.as_text(value)}")
    return found


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_module

    from ganrun import config

    config.register()
    with initialize_config_module(config_module="ganrun.configs", version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def answer(line: str, word: str | None = None) -> None:
    """Print one candidate per line. With `word` (bash: its current word, which ends at a `=` or `:`),
    each candidate is cut to what replaces that word."""
    current = "" if line.endswith(" ") or not line.split() else line.split()[-1]
    cut = len(current) - len(word) if word is not None and current.endswith(word) else 0
    for c in candidates(line):
        sys.stdout.write(c[cut:] + "\n")
