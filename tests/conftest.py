"""Shared helpers: compose configs in-process, tiny-run overrides, the offline MNIST files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from ganrun import config

config.register()

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: each worker (and the ganrun processes it starts) computes on one
    # thread, so the workers do not fight over the cores (two threads each ran the suite twice as slowly)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"  # present on the team's machines, absent in a user's clone
needs_shared_mnist = pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(),
                                        reason="../shared/data/mnist not present (offline MNIST files)")

# A few steps on tiny nets: enough to run every code path, seconds each.
TINY = ["train.eval_n=200", "train.steps=4", "train.batch_size=8", "train.log_every=2", "train.sample_every=2",
        "train.ckpt_every=2", "train.n_samples=4", "train.progress=false"]
TINY_MODEL = {"dcgan": ["model.width=4", "model.latent_dim=8", "model.toy_hidden=[16,16]"],
              "mlp": ["model.hidden=[16,16]", "model.latent_dim=8"]}


def compose_train(*overrides: str) -> DictConfig:
    """The train config as `ganrun train OVERRIDES` would compose it (no run folder)."""
    with initialize_config_module(config_module="ganrun.configs", version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def run_cli(*args: str, cwd: Path | None = None, module: bool = True, timeout: int = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m ganrun ARGS` (or the console script) in a subprocess, as a user would (`env`: more
    variables)."""
    exe = [sys.executable, "-m", "ganrun"] if module else [str(Path(sys.executable).parent / "ganrun")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([*exe, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Classifiers trained by the tests go to a throwaway cache, never the user's."""
    os.environ["GANRUN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
