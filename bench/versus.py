"""The default run against the textbook loop at equal wall time, over seeds: the targets table of
docs/results.md, one data set per call, run one arm at a time (time each alone on the machine).

    python bench/versus.py --name emoji32 --seeds 0 1 2 --out runs/versus \\
        --data dataset=zip dataset.path=emoji-google.zip dataset.image_size=32 dataset.labelled=false

First an untimed 2-step run decodes and caches the set and trains the feature network the metrics use
(done once per set on a machine). Then for each seed: `ganrun train DATA [--with ...] train.seed=S` (its wall time W from the command to its
summary, start-up and end-of-run metrics included), then bench/textbook.py on the same data for W seconds
of training, then both scored the same way by `ganrun eval` (the run's checkpoint, the loop's samples;
same n, same held-out reference, same feature space). Writes OUT/NAME.json (every number) and prints a
Markdown table: each arm's FD (mean ± 95% Student t interval over seeds), the ratio textbook / ganrun per
seed and its mean, and the other scores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GANRUN = [sys.executable, "-c", "from ganrun.commands.cli import main; main()"]
KEYS = ("fd", "kid", "precision", "recall", "density", "coverage", "confident", "hit_rate")


def call(args: list[str], log: Path) -> float:
    """Run a command, its output into log; its wall time in seconds."""
    start = time.perf_counter()
    with log.open("w") as f:
        r = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(args)}; see {log}")
    return time.perf_counter() - start


def score(what: list[str], out: Path, log: Path) -> dict:
    call([*GANRUN, "eval", *what, f"out={out}"], log)
    return json.loads(out.read_text())


def one_seed(data: list[str], extra: list[str], seed: int, out: Path) -> dict:
    run = out / f"ganrun-{seed}"
    wall = call([*GANRUN, "train", *data, *extra, f"train.seed={seed}", "train.progress=false",
                 f"hydra.run.dir={run}"], out / f"ganrun-{seed}.log")
    book = out / f"textbook-{seed}"
    call([sys.executable, str(ROOT / "bench" / "textbook.py"), "--data", *data, "--seconds", f"{wall:.1f}",
          "--seed", str(seed), "--out", str(book)], out / f"textbook-{seed}.log")
    steps = json.loads((book / "run.json").read_text()).get("steps")
    mine = score([f"ckpt={run}"], out / f"ganrun-{seed}.eval.json", out / f"ganrun-{seed}.eval.log")
    theirs = score([f"samples={book / 'samples.npy'}", *data], out / f"textbook-{seed}.eval.json",
                   out / f"textbook-{seed}.eval.log")
    return {"seed": seed, "wall_s": wall, "textbook_steps": steps, "ganrun": mine["metrics"],
            "textbook": theirs["metrics"], "real": mine["real"], "settings": mine.get("settings", {}),
            "per_class": mine.get("per_class")}


def table(rows: list[dict]) -> str:
    from ganrun.metrics.seeds import mean_interval

    keys = [k for k in KEYS if all(k in r["ganrun"] for r in rows)]
    lines = ["| arm | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for arm in ("textbook", "ganrun"):
        cells = [mean_interval(v).text() if (v := [r[arm][k] for r in rows if k in r[arm]]) else "-" for k in keys]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    floor = mean_interval([r["real"]["fd"] for r in rows]).text()
    ratios = [r["textbook"]["fd"] / r["ganrun"]["fd"] for r in rows]
    walls = ", ".join(f"{r['wall_s']:.0f}" for r in rows)
    return ("\n".join(lines) + f"\n\nFD ratio textbook / ganrun per seed: {', '.join(f'{x:.2f}' for x in ratios)}"
            f" (mean {sum(ratios) / len(ratios):.2f}); real-data floor FD {floor}; wall s per seed: {walls}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="ganrun dataset overrides")
    p.add_argument("--with", dest="extra", nargs="*", default=[], help="more ganrun train overrides")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--name", required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    out = args.out / args.name
    out.mkdir(parents=True, exist_ok=True)
    # untimed: decode and cache the set, train the feature network the metrics use (first use only); the
    # warm-up's own folder is scratch, replaced on every call (ganrun refuses to train into a used one)
    shutil.rmtree(out / "warm-up", ignore_errors=True)
    call([*GANRUN, "train", *args.data, *args.extra, "train.steps=2", "train.progress=false",
          f"hydra.run.dir={out / 'warm-up'}"], out / "warm-up.log")
    record = args.out / f"{args.name}.json"  # other seeds measured into the same OUT earlier are kept
    rows = [r for r in (json.loads(record.read_text()) if record.exists() else []) if r["seed"] not in args.seeds]
    for seed in args.seeds:
        rows.append(one_seed(args.data, args.extra, seed, out))
        record.write_text(json.dumps(sorted(rows, key=lambda r: r["seed"]), indent=2) + "\n")
        print(f"seed {seed}: ganrun fd {rows[-1]['ganrun']['fd']:.3g}, textbook fd {rows[-1]['textbook']['fd']:.3g},"
              f" {rows[-1]['wall_s']:.0f} s", flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
