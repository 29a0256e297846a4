"""The command line: `ganrun` (cli) and one module per subcommand (train, sample, evaluate, export,
report), the sweep table (sweep), help and tab completion."""
