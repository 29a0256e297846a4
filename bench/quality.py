"""Mode-collapse benchmark on the 2-D mixtures (PacGAN / VEEGAN protocol), several settings x seeds.

    python bench/quality.py [--seeds 10] [--steps 0] [--datasets ring grid] [--settings gan wgan-gp ...]
                            [--jobs 2] [--with KEY=VALUE ...]

Each setting is a list of ganrun overrides; every (dataset, setting, seed) is one short training run
in a temporary folder. Prints mean +- standard error of modes covered, % high quality and reverse KL,
beside PacGAN's published rows, and the CPU time per seed (summed over the worker processes, so it
does not depend on --jobs). --steps 0 keeps each setting's own step count; --with adds overrides to
every setting (to try a change); --jobs runs seeds in that many single-threaded processes. A setting
with train.drs=true gets a second row: the same runs' samples kept by D's rejection test (DRS); its
CPU time includes that sampling.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from ganrun import config
from ganrun.training.run import run

SETTINGS = {
    "gan": ["loss=gan", "model=mlp"],
    "wgan-gp": ["loss=wgan-gp", "model=mlp"],
    "hinge+sn": ["loss=hinge", "model=mlp", "model.spectral_norm=true"],
    "pacgan2": ["loss=gan", "model=mlp", "model.pack=2"],
    "unrolled5": ["loss=gan", "model=mlp", "regularizers=[unroll]", "regularizers.unroll.steps=5"],  # Unrolled GAN, 5 steps
    "recipe": ["experiment={dataset}"],  # configs/experiment/ring.yaml, grid.yaml
}
COMMON = ["train.progress=false", "train.log_every=500", "train.sample_every=100000", "train.ckpt_every=0"]
PACGAN = {  # published: modes, % HQ, reverse KL
    "grid": [("PacGAN paper: GAN", 17.3, 94.8, 0.70), ("PacGAN paper: PacGAN4", 24.8, 93.6, 0.04)],
    "ring": [("PacGAN paper: GAN", 6.3, 98.2, 0.45), ("PacGAN paper: PacGAN2", 7.9, 95.6, 0.07)],
}


def one_run(dataset: str, overrides: list[str], seed: int, steps: int) -> tuple[dict[str, float], float]:
    """(metrics, CPU seconds) of one training run."""
    start = time.process_time()
    args = [o.format(dataset=dataset) for o in overrides]
    full = ([] if any(a.startswith("experiment=") for a in args) else [f"dataset={dataset}"]) + args + COMMON
    full += [f"train.seed={seed}"] + ([f"train.steps={steps}"] if steps else [])
    with initialize_config_module(config_module="ganrun.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=full)
    with tempfile.TemporaryDirectory() as tmp:
        metrics = run(cfg, Path(tmp) / "run")["metrics"]
    return metrics, time.process_time() - start


def _worker_init() -> None:
    import logging

    torch.set_num_threads(1)  # small MLPs: one thread per process, seeds in parallel
    config.register()
    logging.disable(logging.WARNING)


def mean_se(values: list[float]) -> str:
    if not all(math.isfinite(v) for v in values):  # e.g. reverse KL with no high-quality sample
        return "inf"
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values) / math.sqrt(len(values)):.2g}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--datasets", nargs="+", default=["ring", "grid"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--with", dest="extra", nargs="+", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    rows = []
    pool = ProcessPoolExecutor(args.jobs, initializer=_worker_init)
    for dataset in args.datasets:
        for name in args.settings:
            jobs = [pool.submit(one_run, dataset, SETTINGS[name] + args.extra, seed, args.steps)
                    for seed in range(args.seeds)]
            results, cpus = zip(*(j.result() for j in jobs))
            cpu = sum(cpus) / args.seeds
            # a run with train.drs=true scores G alone and G filtered by D's rejection test (drs_*): two rows
            for prefix, label in [("", name)] + [("drs_", f"{name} + DRS")] * ("drs_modes" in results[0]):
                rows.append((dataset, label, *(mean_se([r[prefix + k] for r in results])
                                               for k in ("modes", "hq_percent", "reverse_kl")), f"{cpu:.0f}"))
                print(" | ".join(map(str, rows[-1])), flush=True)
        rows += [(dataset, n, f"{m}", f"{h}", f"{k}", "-") for n, m, h, k in PACGAN[dataset]]
    pool.shutdown()
    header = ("dataset", "setting", "modes", "% HQ", "reverse KL", "CPU s/seed")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{args.seeds} seeds, mean ± standard error" + (f"; with {' '.join(args.extra)}" if args.extra else ""))
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
