# Makes configs/ importable as the package ganrun.configs (see pyproject.toml), so Hydra can
# load it with pkg://ganrun.configs after any kind of install.
