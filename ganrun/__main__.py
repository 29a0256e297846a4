"""`python -m ganrun ...` is the console script."""

from ganrun.cli import main

if __name__ == "__main__":
    main()
