"""`ganrun SUBCOMMAND [key=value ...]`: peel off the subcommand, hand the rest to it."""

from __future__ import annotations

import sys
from pathlib import Path

USAGE = """usage: ganrun {train,sample,eval} [key=value ...]

  ganrun train [overrides]          train a GAN (Hydra: -m for sweeps, --cfg job to print the config)
  ganrun sample ckpt=PATH [n=64] [out=grid.png|samples.npy] [seed=0]
                                    render samples from a checkpoint
  ganrun eval ckpt=PATH [n=5000] [seed=0] [out=eval.json]
                                    quality metrics of a checkpoint (table + JSON)

Examples:
  ganrun train model=dcgan loss=wgan-gp
  ganrun train -m model=mlp,dcgan loss=gan,wgan-gp
  ganrun sample ckpt=outputs/2026-11-23/10-00-00/checkpoints/last.pt n=64 out=grid.png
"""


def resume_in_place(args: list[str]) -> list[str]:
    """`resume=RUN` continues writing into RUN's own folder unless hydra.run.dir is given."""
    resume = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not resume or not resume[-1] or any(a.startswith("hydra.run.dir=") for a in args) or "-m" in args:
        return args
    target = Path(resume[-1])
    run_dir = target if target.is_dir() else target.parent.parent  # RUN/checkpoints/x.pt -> RUN
    return [*args, f"hydra.run.dir={run_dir}"]


def main(argv: list[str] | None = None) -> None:
    """Dispatch to a subcommand; unknown ones get a one-line error and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command == "train":
        from ganrun import train

        sys.argv = ["ganrun train", *resume_in_place(rest)]  # Hydra reads sys.argv
        train.main()
    elif command == "sample":
        from ganrun import sample

        sys.exit(sample.main(rest))
    elif command == "eval":
        from ganrun import evaluate

        sys.exit(evaluate.main(rest))
    else:
        print(f"ganrun: error: unknown command {command!r}; use one of: train, sample, eval", file=sys.stderr)
        sys.exit(2)
