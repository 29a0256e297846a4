"""The errors a user can fix, and the one path that turns them into a line on stderr and exit code 2.

Every subcommand raises a `UserError` subclass (or lets an OSError of a file it reads or writes escape);
`run` prints `ganrun NAME: error: MESSAGE` and returns 2. Nothing here imports the rest of ganrun, so any
module can raise these without an import cycle.
"""

from __future__ import annotations

import sys
from typing import Callable


class UserError(ValueError):
    """Bad input a user can fix; the message names what was wrong and how to fix it, in one line."""


class ConfigError(UserError):
    """A config or command-line value that cannot run; the message names the key and what would be valid."""


class DataError(UserError):
    """A dataset that cannot be loaded as configured (the message says how to fix it)."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read (missing, corrupt, or not a ganrun checkpoint)."""


class FeatureError(UserError):
    """Feature network weights (shipped or given) that are missing or altered; the message says how to fix it."""


def one_line(error: BaseException) -> str:
    """Hydra/OmegaConf's multi-line composition errors, folded into one line (the cause included)."""
    text = str(error) + ("\n" + str(error.__cause__) if error.__cause__ else "")
    skip = ("Set the environment", "Config search path", "provider=", "full_key", "reference_type",
            "object_type", "To append")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(skip)]
    out: list[str] = []
    for ln in lines:
        if out and out[-1].endswith(":") and ":" not in ln:  # an "Available options in 'x':" list
            out[-1] += " " + ln
        elif out and out[-1].startswith("Available options") and ":" not in ln:
            out[-1] += ", " + ln
        else:
            out.append(ln)
    return "; ".join(out)


def describe_os_error(error: OSError) -> str:
    """An OSError as one line: what failed on which file."""
    where = f" {error.filename}" if error.filename else ""
    return f"cannot write or read{where}: {error.strerror or error}"


def run(name: str, main: Callable[[list[str]], int | None], args: list[str]) -> int:
    """`main(args)`'s exit code; a UserError or OSError becomes one line on stderr and exit code 2."""
    try:
        return main(args) or 0
    except UserError as e:
        message = str(e)
    except OSError as e:
        message = describe_os_error(e)
    print(f"ganrun {name}: error: {message}", file=sys.stderr)
    return 2
