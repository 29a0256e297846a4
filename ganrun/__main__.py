"""`python -m ganrun ...` is the console script."""

from ganrun.commands.cli import main

if __name__ == "__main__":
    main()
