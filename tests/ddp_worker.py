"""Run by tests/test_distributed.py under torchrun: train a tiny run, then save this rank's weights."""

import faulthandler
import sys
from pathlib import Path

import torch

faulthandler.dump_traceback_later(240, exit=True)  # a hang fails the test with a traceback

sys.path.insert(0, str(Path(__file__).parent))
from conftest import compose_train  # noqa: E402

from ganrun import config  # noqa: E402
from ganrun.training import distributed
from ganrun.training.run import run  # noqa: E402

out, overrides = Path(sys.argv[1]), sys.argv[2:]
config.register()
captured = {}
import ganrun.training.loop as loop  # noqa: E402

real_fit = loop.fit


def fit(exp, *args, **kwargs):  # keep this rank's models and first batch to compare after training
    captured["exp"] = exp
    batch = next(exp.data.batches(cfg.train.batch_size, exp.device, seed=cfg.train.seed,
                                  rank=distributed.world().rank, world=distributed.world().size))
    captured["batch"] = batch
    return real_fit(exp, *args, **kwargs)


import ganrun.training.run as train  # noqa: E402

train.fit = fit
cfg = compose_train(*overrides)
run(cfg, out / "run")
w = distributed.world()
exp = captured["exp"]
torch.save({"G": exp.G.state_dict(), "D": exp.D.state_dict(), "batch": captured["batch"], "world": w.size},
           out / f"rank{w.rank}.pt")
