# `make train` and `make test` set everything up on a fresh machine (a .venv/ with the project
# installed) and then run. Pass Hydra overrides to training with ARGS, e.g.
#   make train ARGS="model=dcgan loss=wgan-gp"
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test test-all clean

install: $(STAMP)

# Reinstall when the project's dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

train: install
	$(BIN)/ganrun train $(ARGS)

test: install
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

test-all: install
	$(BIN)/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
