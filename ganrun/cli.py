"""`ganrun SUBCOMMAND [key=value ...]`: peel off the subcommand, hand the rest to it."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

USAGE = """usage: ganrun {train,sample,eval,export,report} [key=value ...]

  ganrun train [overrides]          train a GAN (Hydra: -m for sweeps, --cfg job to print the config)
  ganrun sample ckpt=PATH [n=64] [out=grid.png|samples.npy|DIR/] [seed=0] [mode=interp out=walk.gif]
                                    render samples from a checkpoint
  ganrun eval ckpt=PATH [n=5000] [seed=0] [out=eval.json] [inception=true [inception_weights=PATH]]
                                    quality metrics of a checkpoint (table + JSON)
  ganrun export ckpt=PATH format=safetensors|torchscript|onnx [out=FILE]
                                    the generator alone, for sharing
  ganrun report DIR [out=PREFIX]    table (Markdown, CSV) and plot of every run under DIR

  ganrun COMMAND --help             every key of a command, its default and meaning
  ganrun --version
  eval "$(ganrun --completion bash)"  tab completion of commands, groups, options and keys (bash, zsh)

Examples:
  ganrun train model=dcgan loss=wgan-gp
  ganrun train -m model=mlp,dcgan loss=gan,wgan-gp
  ganrun sample ckpt=outputs/2026-11-23/10-00-00/checkpoints/last.pt n=64 out=grid.png
"""


COMMANDS = {"sample": "sample", "eval": "evaluate", "export": "export", "report": "report"}  # command -> module


def resume_in_place(args: list[str]) -> list[str]:
    """`resume=RUN` continues writing into RUN's own folder unless hydra.run.dir is given."""
    resume = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not resume or not resume[-1] or any(a.startswith("hydra.run.dir=") for a in args) or "-m" in args:
        return args
    target = Path(resume[-1])
    if target.is_dir():
        run_dir = target
    elif target.is_file() and target.parent.name == "checkpoints":
        run_dir = target.parent.parent  # RUN/checkpoints/x.pt -> RUN
    else:
        return args  # a missing or loose checkpoint: a new run folder (a missing one is refused later)
    return [*args, f"hydra.run.dir={run_dir}"]


def single_runs(args: list[str]) -> list[list[str]]:
    """The override lists to check before Hydra starts: the run's own, or for a sweep (-m) each value of
    each swept key once (beside the other keys' first values), so a typo anywhere in a sweep is caught."""
    plain = [a for a in args if a not in ("-m", "--multirun") and not a.startswith(("hydra.", "hydra/"))]
    if len(plain) == len(args):
        return [plain]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(plain)
    choices = [values for values in map(_values, parsed) if values]  # a glob sweep: left to Hydra
    first = [values[0] for values in choices]
    return [first] + [first[:i] + [v] + first[i + 1:] for i, values in enumerate(choices) for v in values[1:]]


def _values(override: Any) -> list[str]:
    """key=value texts of one override: each value of a sweep (an interval's lower end), or itself."""
    if not override.is_sweep_override():
        return [override.input_line]
    key = override.get_key_element()
    if override.value_type.name == "INTERVAL_SWEEP":
        return [f"{key}={override.value().start}"]
    try:
        return [f"{key}={v}" for v in override.sweep_string_iterator()]
    except Exception:  # a sweep form only Hydra can expand (glob): Hydra checks it
        return []


def check_composes(args: list[str]) -> None:
    """Compose and validate a run's config (each value of a sweep's) before Hydra starts, so a bad
    override gets one line and exit 2 and leaves no run folder. Hydra's own flags are left to Hydra."""
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in args):
        return
    out = next((a.split("=", 1)[1] for a in reversed(args) if a.startswith("hydra.run.dir=")), "outputs")
    existing = Path(out).absolute()
    while not existing.exists():
        existing = existing.parent
    if not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        fail(f"cannot write the run folder {out} ({existing} is not a writable folder); "
             f"pick another with hydra.run.dir=DIR")
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ganrun import config
    from ganrun.errors import one_line

    config.register()
    try:
        for overrides in single_runs(args):
            with initialize_config_module(config_module="ganrun.configs", version_base="1.3"):
                config.validate(compose(config_name="train", overrides=overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        message = one_line(e)
        renamed = next((k for k in config.RENAMED if f"override '{k}'" in message), None)  # optimizer.lr=...
        tracker = re.search(r"override 'logger\.(\w+)\.", message)
        if tracker and f"Key '{tracker[1]}' is not in struct" in message:  # logger.wandb.x=1, wandb not picked
            message += f"; {tracker[1]} is not picked: logger=[tensorboard,{tracker[1]}]"
        group = re.search(r"Could not load '(\w+)/", message)  # a list-valued group (logger=[...]) names no options
        if group:
            from ganrun.help import option_files

            message += f"; {group[1]} options: {', '.join(option_files(group[1]))}"
        fail(f"{renamed} is not a ganrun key; use {config.RENAMED[renamed]}" if renamed else message)


def fail(message: str) -> None:
    """`ganrun train: error: MESSAGE` on stderr, exit code 2."""
    print(f"ganrun train: error: {message}", file=sys.stderr)
    sys.exit(2)


HELP_FLAGS = ("-h", "--help")
ABOUT = {  # command -> (usage, what it does, its schema as module:class)
    "sample": ("ganrun sample ckpt=PATH [key=value ...]", "Renders G's samples from a checkpoint: a grid, an "
               ".npy, a folder of PNGs or (mode=interp) an interpolation GIF.", "sample:SampleConfig"),
    "eval": ("ganrun eval ckpt=PATH|samples=PATH [key=value ...]", "Scores a checkpoint (or saved samples) with "
             "the quality metrics, beside real data's own scores; prints a table and writes JSON.",
             "evaluate:EvalConfig"),
    "export": ("ganrun export ckpt=PATH format=safetensors|torchscript|onnx [out=FILE]", "Writes the generator "
               "alone, for sharing and for use without ganrun.", "export:ExportConfig"),
}


def print_help(command: str, rest: list[str]) -> None:
    """`ganrun COMMAND --help` on stdout, exit 0."""
    import importlib

    from ganrun import help

    if command == "train":
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from ganrun.errors import one_line

        try:  # a key still to fill (dataset.root=???) is shown as such; a bad override is one line
            text = help.train_help([a for a in rest if a not in HELP_FLAGS and not a.startswith(("hydra.", "-"))])
        except (HydraException, OmegaConfBaseException) as e:
            fail(one_line(e))
    elif command == "report":
        text = help.REPORT
    else:
        usage, about, target = ABOUT[command]
        module, schema = target.split(":")
        text = help.schema_help(usage, getattr(importlib.import_module(f"ganrun.{module}"), schema), about)
    print(text, end="")
    sys.exit(0)


def shell_completion(argv: list[str]) -> None:
    """`--completion bash|zsh` prints the script to eval; `--complete LINE [WORD]` answers it. Hydra's
    `-sc install=SHELL` / `-sc query=SHELL` (after any subcommand) are served the same way."""
    from ganrun import completion

    if argv[0] == "--complete" and len(argv) in (2, 3):
        completion.answer(*argv[1:])
        sys.exit(0)
    flag = "-sc" if "-sc" in argv else "--shell-completion"
    value = argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else ""
    if argv[0] == "--completion" and len(argv) == 2:
        value = f"install={argv[1]}"
    action, _, shell = value.partition("=")
    if action == "query" and shell in completion.SCRIPTS:
        completion.answer(os.environ.get("COMP_LINE", "ganrun "))
    elif action == "install" and shell in completion.SCRIPTS:
        print(completion.script(shell), end="")
    else:
        print("ganrun: error: shell completion: use ganrun --completion bash (or zsh), e.g. "
              "eval \"$(ganrun --completion bash)\" in ~/.bashrc", file=sys.stderr)
        sys.exit(2)
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    """Dispatch to a subcommand; unknown ones get a one-line error and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        sys.exit(0 if argv else 2)
    if argv[0] in ("--completion", "--complete") or "-sc" in argv or "--shell-completion" in argv:
        shell_completion(argv)
    if argv[0] in ("-V", "--version"):
        from ganrun.help import version

        print(version())
        sys.exit(0)
    command, rest = argv[0], argv[1:]
    if command in ("train", "report", *ABOUT) and any(a in HELP_FLAGS for a in rest):
        print_help(command, rest)
    if command == "train":
        from ganrun import train

        check_composes(rest)
        extra = []
        if int(os.environ.get("RANK", "0")) > 0:  # torchrun's other ranks: rank 0 writes the run folder and the log
            extra = ["hydra.output_subdir=null", "hydra/job_logging=disabled"]
        sys.argv = ["ganrun train", *resume_in_place(rest), *extra]  # Hydra reads sys.argv
        train.main()
    elif command in COMMANDS:
        import importlib

        from ganrun import errors

        module = importlib.import_module(f"ganrun.{COMMANDS[command]}")
        sys.exit(errors.run(command, module.main, rest))  # bad input: one line, exit 2
    else:
        print(f"ganrun: error: unknown command {command!r}; use one of: train, sample, eval, export, report "
              f"(ganrun --help lists them)", file=sys.stderr)
        sys.exit(2)
