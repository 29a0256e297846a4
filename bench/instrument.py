"""Does the metric tell known-good from known-bad? Constructed sets with known answers, scored by the
same evaluator as every run (the offline MNIST sample's: the shipped MNIST network against the 10,000
MNIST test digits), each beside real data's floor at the same n.

    python bench/instrument.py [--n 1000] [--markdown]

Sets: real training digits not used by the floor; only the digits 0-4 (half the classes); the same
digits blurred (Gaussian, sigma 1 px); uniform noise; one digit repeated; and a conditional set that
ignores z (one image per class, each asked for as its own class). tests/test_evaluate.py asserts the
orderings this table shows.
"""

from __future__ import annotations

import argparse

import torch
from omegaconf import OmegaConf
from torchvision.transforms.functional import gaussian_blur

from ganrun.config.targets import instantiate
from ganrun.data import to_unit_range as unit
from ganrun.metrics.evaluator import Evaluator

KEYS = ("fd", "precision", "recall", "density", "coverage", "classes", "class_kl", "confident", "class_diversity",
        "hit_rate", "intra_fd")


def sets(images: torch.Tensor, labels: torch.Tensor, n: int) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    g = torch.Generator().manual_seed(5)
    idx = torch.randperm(len(images), generator=g)
    real, lab = unit(images[idx]), labels[idx]
    one_per_class = torch.stack([real[(lab == c).nonzero()[0, 0]] for c in range(10)])
    asked = torch.arange(n) % 10
    return {"real digits": (real[:n], None),
            "digits 0-4 only": (real[lab < 5][:n], None),
            "blurred (sigma 1 px)": (gaussian_blur(real[:n], 5, 1.0), None),
            "uniform noise": (torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, None),
            "one digit repeated": (real[:1].expand(n, -1, -1, -1), None),
            "real digits, as conditional": (real[:n], lab[:n]),
            "conditional, one image per class": (one_per_class[asked], asked)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    cfg = OmegaConf.create({"_target_": "ganrun.data.mnist_sample", "image_size": 28, "on_device": False})
    data = instantiate(cfg, "dataset")
    ev = Evaluator(data, args.n)
    rows = []
    for name, (x, labels) in sets(data.images, data.labels, args.n).items():
        scores, floor = ev.score(x, labels)
        rows.append((name, scores))
        if labels is None and name == "real digits":
            rows.insert(0, ("floor: real training digits", floor))
        if labels is not None and name.startswith("real"):
            rows.append(("floor, as conditional", floor))
    cells = [[name, *(f"{s[k]:.3g}" if k in s else "" for k in KEYS)] for name, s in rows]
    if args.markdown:
        print("| set | " + " | ".join(KEYS) + " |\n|" + "---|" * (len(KEYS) + 1))
        print("\n".join("| " + " | ".join(c) + " |" for c in cells))
    else:
        widths = [max(len(r[i]) for r in [["set", *KEYS], *cells]) for i in range(len(KEYS) + 1)]
        for row in [["set", *KEYS], *cells]:
            print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print(f"\n{args.n} images each; settings: " + ", ".join(f"{k}={v}" for k, v in ev.settings.items()))


if __name__ == "__main__":
    main()
