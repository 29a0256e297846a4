"""Does the metric tell known-good from known-bad? Constructed sets with known answers, scored by the
same evaluator as every run, each beside real data's floor at the same n.

    python bench/instrument.py [--n 1000] [--markdown]            # the offline MNIST sample
    python bench/instrument.py --data dataset=zip dataset.path=emoji.zip dataset.image_size=64
    python bench/instrument.py --data ... --without-labels        # scored as an unlabelled set

Sets: real training images not used by the floor; only the first half of the classes; the same images
blurred (Gaussian, sigma 1 px at 28 px, scaled with the size); uniform noise; one image repeated; and, in
a space with classes, a conditional set that ignores z (one image per class, each asked for as its own
class). --without-labels scores in the space a set without labels gets (its labels still pick the half).
tests/test_evaluate.py and tests/test_own_images.py assert the orderings this table shows.
"""

from __future__ import annotations

import argparse

import torch
from torchvision.transforms.functional import gaussian_blur

from ganrun.config import compose
from ganrun.config.targets import instantiate
from ganrun.data import to_unit_range as unit
from ganrun.metrics.evaluator import Evaluator

KEYS = ("fd", "kid", "precision", "recall", "density", "coverage", "classes", "class_kl", "confident",
        "class_diversity", "hit_rate", "intra_fd")


def sets(images: torch.Tensor, labels: torch.Tensor | None, n: int,
         conditional: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    g = torch.Generator().manual_seed(5)
    idx = torch.randperm(len(images), generator=g)
    real = unit(images[idx])
    size = images.shape[-1]
    sigma = size / 28
    out = {"real images": (real[:n], None)}
    if labels is not None:
        lab = labels[idx]
        k = int(lab.max()) + 1
        out[f"classes 0-{k // 2 - 1} only"] = (real[lab < k // 2][:n], None)
    out.update({f"blurred (sigma {sigma:.2g} px)": (gaussian_blur(real[:n], 2 * round(2 * sigma) + 1, sigma), None),
                "uniform noise": (torch.rand(n, *images.shape[1:], generator=g) * 2 - 1, None),
                "one image repeated": (real[:1].expand(n, -1, -1, -1), None)})
    if conditional and labels is not None:
        one_per_class = torch.stack([real[(lab == c).nonzero()[0, 0]] for c in range(k)])
        asked = torch.arange(n) % k
        out.update({"real images, as conditional": (real[:n], lab[:n]),
                    "conditional, one image per class": (one_per_class[asked], asked)})
    return out


def table(rows: list[tuple[str, dict[str, float]]], markdown: bool) -> str:
    keys = [k for k in KEYS if any(k in s for _, s in rows)]
    cells = [[name, *(f"{s[k]:.3g}" if k in s else "" for k in keys)] for name, s in rows]
    if markdown:
        return "| set | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1) + "\n" + "\n".join(
            "| " + " | ".join(c) + " |" for c in cells)
    widths = [max(len(r[i]) for r in [["set", *keys], *cells]) for i in range(len(keys) + 1)]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in [["set", *keys], *cells])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="*", default=["dataset=mnist-sample"], help="ganrun dataset overrides")
    p.add_argument("--without-labels", action="store_true", help="score in the space of an unlabelled set")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    data = instantiate(compose(args.data).dataset, "dataset")
    scored = instantiate(compose([*args.data, "dataset.labelled=false"]).dataset, "dataset") \
        if args.without_labels else data
    ev = Evaluator(scored, args.n)
    n = ev.n  # a small set's floor has fewer images than asked for
    source = data.make_split("train") if data.held_out else data  # the images the floor draws from
    rows = []
    conditional = ev.suite is not None and getattr(ev.suite, "n_classes", 0) > 0
    for name, (x, labels) in sets(source.all_samples(), source.labels, n, conditional).items():
        scores, floor = ev.score(x, labels)
        rows.append((name, scores))
        if labels is None and name == "real images":
            rows.insert(0, ("floor: real training images", floor))
        if labels is not None and name.startswith("real"):
            rows.append(("floor, as conditional", floor))
    print(table(rows, args.markdown))
    print(f"\n{n} images each; settings: " + ", ".join(f"{k}={v}" for k, v in ev.settings.items()))


if __name__ == "__main__":
    main()
