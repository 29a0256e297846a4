"""`ganrun SUBCOMMAND [key=value ...]`: peel off the subcommand, hand the rest to it."""

from __future__ import annotations

import os
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


def run_folder_of(target: Path) -> Path | None:
    """The run folder a resume= target belongs to: the folder itself, RUN for RUN/checkpoints/x.pt, else None."""
    if target.is_dir():
        return target.resolve()  # outputs/latest -> the run it points at
    if target.is_file() and target.parent.name == "checkpoints":
        return target.parent.parent.resolve()
    return None


def saved_overrides(target: Path, run_dir: Path | None) -> list[str]:
    """The overrides the run being resumed was composed from: those its checkpoint saved, or for an older
    checkpoint its folder's .hydra/overrides.yaml. A checkpoint that cannot be read is one line and exit 2,
    before Hydra writes anything into the folder named."""
    from ganrun.artifacts import checkpoint
    from ganrun.errors import UserError

    try:
        saved = checkpoint.load(target).get("overrides")
    except UserError as e:
        fail(str(e).replace("ckpt=", "resume=", 1))
        raise
    if saved is None and run_dir is not None and (run_dir / ".hydra" / "overrides.yaml").is_file():
        from omegaconf import OmegaConf

        saved = list(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
    return [str(o) for o in saved or [] if not str(o).startswith("resume=")]


def resume_args(args: list[str]) -> list[str]:
    """`ganrun train resume=RUN [changes]` continues RUN's own experiment: the overrides it was composed from,
    then the user's changes (only keys a run may change midway, else one line and exit 2), in RUN's own
    folder (unless hydra.run.dir is given), with this resume's record in RUN/.hydra/resume-DATE_TIME/ so
    the run's original .hydra/ record stays as it was."""
    import datetime

    from ganrun import config

    resume = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not resume or not resume[-1] or "-m" in args or "--multirun" in args:
        return args
    hydra_args = [a for a in args if a.startswith(("hydra.", "hydra/"))]
    changes = [a for a in args if not a.startswith(("resume=", "hydra.", "hydra/", "-"))]
    try:
        config.check_resume_overrides(changes)
    except config.ConfigError as e:
        fail(str(e))
    target = Path(resume[-1])
    run_dir = run_folder_of(target)
    changed = {config.override_key(c) for c in changes}
    kept = [o for o in saved_overrides(target, run_dir) if config.override_key(o) not in changed]
    extra = []
    if run_dir is not None and not any(a.startswith("hydra.run.dir=") for a in args):
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        extra = [f"hydra.run.dir={run_dir}", f"hydra.output_subdir=.hydra/resume-{stamp}"]
    return [*kept, *changes, f"resume={resume[-1]}", *hydra_args, *extra]


def sweep_or_run_resume(args: list[str]) -> list[str]:
    """The arguments of `ganrun train`, with resume= turned into what finishes that sweep (with -m) or
    continues that run."""
    from ganrun.commands import resume_sweep

    if not (resume_sweep.is_sweep(args) and any(a.startswith("resume=") and a != "resume=" for a in args)):
        return resume_args(args)
    from ganrun.errors import ConfigError

    try:
        return resume_sweep.sweep_args(args)
    except ConfigError as e:
        fail(str(e))
        raise


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
        values = [f"{key}={v}" for v in override.sweep_string_iterator()]
    except Exception:  # a sweep form only Hydra can expand (glob): Hydra checks it
        return []
    if not values:
        from ganrun.errors import ConfigError

        raise ConfigError(f"{override.input_line}: this sweep has no values, so no run would start; "
                          f"give one or more, e.g. {key}=range(5) for 0, 1, 2, 3, 4")
    return values


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
    from hydra.errors import OverrideParseException

    from ganrun import config
    from ganrun.commands.resume_sweep import resuming
    from ganrun.data import check_location
    from ganrun.models.build import check_image_size

    located = not any(a.startswith("resume=") for a in args) and not resuming()
    try:
        for overrides in single_runs(args):
            cfg = config.compose(overrides)
            config.validate(cfg)
            if located:  # a resumed run's relative paths are its launch folder's: checked when it is built
                check_location(cfg.dataset)
            check_image_size(cfg.model, cfg.dataset.get("image_size"))
    except ValueError as e:  # ConfigError, DataError: one line that names the key
        fail(str(e))
    except OverrideParseException as e:  # a sweep's overrides, parsed before composing
        fail(config.explain(e, args))


def home_paths(args: list[str]) -> list[str]:
    """key=~/path as key=/home/me/path: the shell expands ~ only at a word's start or after a variable's =,
    and Hydra's grammar cannot read it."""
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        out.append(f"{key}={os.path.expanduser(value)}" if eq and key and value.startswith("~/") else a)
    return out


def fail(message: str) -> None:
    """`ganrun train: error: MESSAGE` on stderr, exit code 2."""
    print(f"ganrun train: error: {message}", file=sys.stderr)
    sys.exit(2)


HELP_FLAGS = ("-h", "--help")


def print_help(command: str, rest: list[str]) -> None:
    """`ganrun COMMAND --help` on stdout, exit 0."""
    from ganrun.commands import help

    if command == "train":
        from ganrun.errors import ConfigError

        try:  # a key still to fill (dataset.root=???) is shown as such; a bad override is one line
            text = help.train_help([a for a in rest if a not in HELP_FLAGS and not a.startswith(("hydra.", "-"))])
        except ConfigError as e:
            fail(str(e))
    elif command == "report":
        text = help.REPORT
    else:
        usage, about, schema = help.ABOUT[command]
        text = help.schema_help(usage, schema, about)
    print(text, end="")
    sys.exit(0)


def shell_completion(argv: list[str]) -> None:
    """`--completion bash|zsh` prints the script to eval; `--complete LINE [WORD]` answers it. Hydra's
    `-sc install=SHELL` / `-sc query=SHELL` (after any subcommand) are served the same way."""
    from ganrun.commands import completion

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
        from ganrun.commands.help import version

        print(version())
        sys.exit(0)
    command, rest = argv[0], home_paths(argv[1:])
    from ganrun.commands.help import ABOUT, COMMANDS

    if command in ("train", "report", *ABOUT) and any(a in HELP_FLAGS for a in rest):
        print_help(command, rest)
    if command == "train":
        from ganrun.commands import train

        rest = sweep_or_run_resume(rest)
        check_composes(rest)
        extra = []
        if int(os.environ.get("RANK", "0")) > 0:  # torchrun's other ranks: rank 0 writes the run folder and the log
            extra = ["hydra.output_subdir=null", "hydra/job_logging=disabled"]
        sys.argv = ["ganrun train", *rest, *extra]  # Hydra reads sys.argv
        train.main()
    elif command in COMMANDS:
        import importlib

        from ganrun import errors

        module = importlib.import_module(f"ganrun.commands.{COMMANDS[command]}")
        sys.exit(errors.run(command, module.main, rest))  # bad input: one line, exit 2
    else:
        print(f"ganrun: error: unknown command {command!r}; use one of: train, sample, eval, export, report "
              f"(ganrun --help lists them)", file=sys.stderr)
        sys.exit(2)
