"""The floor for the image metrics: real training images scored against the test split, in the same
classifier features `ganrun eval` uses (so a GAN's FD / KID can be read as "x times real").

    python bench/real_reference.py [dataset overrides ...] [--n 5000]
    python bench/real_reference.py dataset=mnist dataset.root=DIR dataset.download=false

Composes the dataset exactly as `ganrun train` would, loads (or trains once and caches) the same
classifier the evaluator uses, and prints the FD and KID of n random training images (seed 0)
against the reference split (the datasets with a train/test split only), with the classifier's
checksum.
"""

from __future__ import annotations

import argparse

import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from ganrun import config, metrics
from ganrun.evaluate import Evaluator
from ganrun.config import instantiate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("overrides", nargs="*", help="dataset overrides, e.g. dataset=mnist dataset.root=DIR")
    p.add_argument("--n", type=int, default=5000)
    args = p.parse_args()
    config.register()
    with initialize_config_module(config_module="ganrun.configs", version_base="1.3"):
        cfg: DictConfig = compose(config_name="train", overrides=args.overrides)
    # the training split only (the 5k sample's default, "all", holds the test images too); the evaluator
    # builds its classifier and reference from the dataset config, as `ganrun eval` does
    data = instantiate(OmegaConf.create({**OmegaConf.to_container(cfg.dataset, resolve=True), "split": "train"}),
                       "dataset")
    evaluator = Evaluator(cfg.dataset, data, args.n)
    if evaluator.reference is None:
        raise SystemExit(f"no classifier reference for this dataset: {evaluator.settings}")
    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(0))[:args.n]
    with torch.no_grad():
        feats = torch.cat([evaluator.net.features(x.float().div(127.5).sub(1)) for x in data.images[idx].split(1000)])
    print(f"{len(idx)} real training images vs {evaluator.settings['reference']}: "
          f"fd {metrics.frechet_distance(feats, evaluator.reference):.3f}  kid {metrics.kid(feats, evaluator.reference):.3f}")
    print("settings: " + ", ".join(f"{k}={v}" for k, v in evaluator.settings.items()))


if __name__ == "__main__":
    main()
