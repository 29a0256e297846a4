"""`ganrun SUBCOMMAND [key=value ...]`: peel off the subcommand, hand the rest to it."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

USAGE = """usage: ganrun {train,sample,eval,export,report} [key=value ...]

  ganrun train [overrides]          train a GAN (Hydra: -m for sweeps, --cfg job to print the config)
  ganrun sample ckpt=PATH [n=64] [out=grid.png|samples.npy|DIR/] [seed=0] [mode=interp out=walk.gif]
                                    render samples from a checkpoint
  ganrun eval ckpt=PATH [n=5000] [seed=0] [out=eval.json] [inception=true [inception_weights=PATH]]
                                    quality metrics of a checkpoint (table + JSON)
  ganrun export ckpt=PATH format=safetensors|torchscript|onnx [out=FILE]
                                    the generator alone, for sharing
  ganrun report DIR [out=PREFIX]    table (Markdown, CSV) and plot of every run under DIR

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


def check_composes(args: list[str]) -> None:
    """Compose a single run's config before Hydra starts, so a bad override gets one line and exit 2.

    Sweeps (-m) and Hydra's own flags are left to Hydra."""
    if any(a.startswith("-") for a in args):
        return
    out = next((a.split("=", 1)[1] for a in reversed(args) if a.startswith("hydra.run.dir=")), "outputs")
    existing = Path(out).absolute()
    while not existing.exists():
        existing = existing.parent
    if not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        print(f"ganrun train: error: cannot write the run folder {out} ({existing} is not a writable folder); "
              f"pick another with hydra.run.dir=DIR", file=sys.stderr)
        sys.exit(2)
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ganrun import config
    from ganrun.errors import one_line

    config.register()
    try:
        with initialize_config_module(config_module="ganrun.configs", version_base="1.3"):
            cfg = compose(config_name="train", overrides=[a for a in args if not a.startswith(("hydra.", "hydra/"))])
        config.check_logger(cfg.logger)  # e.g. a tracker's missing package, before Hydra makes the run folder
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        message = one_line(e)
        tracker = re.search(r"override 'logger\.(\w+)\.", message)
        if tracker and f"Key '{tracker[1]}' is not in struct" in message:  # logger.wandb.x=1, wandb not picked
            message += f"; {tracker[1]} is not picked: logger=[tensorboard,{tracker[1]}]"
        print(f"ganrun train: error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Dispatch to a subcommand; unknown ones get a one-line error and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
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
        print(f"ganrun: error: unknown command {command!r}; use one of: train, sample, eval, export, report", file=sys.stderr)
        sys.exit(2)
