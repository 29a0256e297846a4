# `make train` and `make test` set everything up on a fresh machine (a .venv/ with the project
# installed) and then run. Pass Hydra overrides to training with ARGS, e.g.
#   make train ARGS="model=dcgan loss=wgan-gp"
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test train test test-all clean

install: $(STAMP)

install-test: $(TEST_STAMP)

# What a run needs; reinstalled when the project's dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

# The test extras (trackers, exporters, sweepers, datasets) on top.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(TEST_STAMP)

train: install
	$(BIN)/ganrun train $(ARGS)

# One worker per core (pytest-xdist), each computing on one thread; idle workers take tests from busy ones.
PYTEST := $(BIN)/python -m pytest -n auto --dist worksteal

test: install-test
	$(PYTEST) -m "not slow" $(ARGS)

test-all: install-test
	$(PYTEST) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
