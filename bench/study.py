"""Lucic et al. (2018), "Are GANs Created Equal?", at a CPU budget: each loss tuned by random search over
the paper's wide hyperparameter ranges, every trial one `ganrun train`, then `ganrun report OUT by=name`
(the budget curves: the best FD after k trials per loss, and the table).

    python bench/study.py --out runs/study-mnist --trials 8 --steps 2000 --data dataset=mnist-sample
    python bench/study.py --out runs/study-fashion --trials 8 --steps 2000 \\
        --data dataset=fashion-mnist dataset.root=D/fashion-mnist

The ranges are those of the paper's reference code (google/compare_gan, src/params.py, "wide"): learning
rate log-uniform in [1e-5, 1e-2] (G and D alike), Adam's beta1 uniform in [0, 1], D steps per G step
uniform in {1, ..., 5}, batch norm in D or not; WGAN's clipping bound log-uniform in [1e-3, 1], the
gradient penalty weight of WGAN-GP and DRAGAN log-uniform in [0.1, 100]. As in the paper: Adam for every
loss, batch 64, no labels (an unconditional DCGAN, no clusters) and no EMA of G; the VAE is the baseline
(learning rate and beta1 only). Trial t of a loss draws from a generator seeded by (--seed, loss, t), so
a rerun draws the same trials; a trial that completed is skipped and one that stopped continues from its
checkpoint, so the same command finishes a study that was interrupted. Each trial is named by its arm (`name=dragan`),
which the report groups by (DRAGAN is the non-saturating loss plus its penalty, so `loss` alone would not
tell it apart).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

GANRUN = [sys.executable, "-c", "from ganrun.commands.cli import main; main()"]
LOSSES = {  # the arms: ganrun overrides, and the loss-specific range (override, log10 low, log10 high)
    "minimax": (["loss=minimax"], None),
    "ns": (["loss=gan"], None),
    "lsgan": (["loss=lsgan"], None),
    "wgan": (["loss=wgan", "optimizer=adam"], ("regularizers.clip.bound", -3.0, 0.0)),
    "wgan-gp": (["loss=wgan-gp"], ("regularizers.gp.weight", -1.0, 2.0)),
    "dragan": (["loss=gan", "regularizers=[dragan]"], ("regularizers.dragan.weight", -1.0, 2.0)),
    "vae": (["model=vae"], None),
}
COMMON = ["model.conditional=false", "train.clusters=0", "train.ema=0", "train.batch_size=64",
          "train.progress=false", "train.sample_every=1000000", "train.log_every=500"]


def draw(loss: str, trial: int, seed: int) -> list[str]:
    """The overrides of one trial: the loss's arm and hyperparameters drawn from the wide ranges."""
    rng = random.Random(f"{seed}/{loss}/{trial}")
    arm, extra = LOSSES[loss]
    lr = 10 ** rng.uniform(-5.0, -2.0)
    beta1 = rng.uniform(0.0, 1.0)
    out = [*arm, f"optimizer.lr_g={lr:.3g}", f"optimizer.lr_d={lr:.3g}", f"optimizer.betas=[{beta1:.3f},0.999]"]
    if loss == "vae":
        return out
    out += [f"train.n_critic={rng.randint(1, 5)}", f"model.d_norm={rng.choice(['batch', 'none'])}"]
    if extra is not None:
        key, low, high = extra
        out.append(f"{key}={10 ** rng.uniform(low, high):.3g}")
    return out


def trial(folder: Path, overrides: list[str], deadline: float) -> str:
    """Run (or finish) one trial in folder, stopping it (resumable, from its checkpoint) at the deadline."""
    summary = folder / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("status") == "completed":
        return "completed (earlier)"
    if time.time() >= deadline:
        return "not started (deadline)"
    if (folder / "checkpoints" / "last.pt").is_file():
        args = ["train", f"resume={folder}"]
    else:
        args = ["train", *overrides, f"hydra.run.dir={folder}"]
    with (folder.parent / f"{folder.name}.log").open("a") as log:
        child = subprocess.Popen([*GANRUN, *args], stdout=log, stderr=subprocess.STDOUT)
        try:
            child.wait(timeout=max(deadline - time.time(), 1.0))
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGTERM)  # ganrun checkpoints and stops; the next call resumes it
            child.wait()
    status = json.loads(summary.read_text()).get("status") if summary.is_file() else "no summary"
    return str(status)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=["dataset=mnist-sample"], help="ganrun dataset overrides")
    p.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0, help="which trials are drawn")
    p.add_argument("--with", dest="extra", nargs="*", default=[], help="more overrides for every trial")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--jobs", type=int, default=1, help="trials run at once (on a GPU, several share it)")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop at this wall time: running trials checkpoint, the rest wait for the next call")
    args = p.parse_args()
    start, cpu = time.perf_counter(), sum(os.times()[2:4])  # the finished children's CPU seconds
    deadline = time.time() + 60 * args.minutes if args.minutes else float("inf")

    def one(loss: str, t: int) -> str:
        folder = args.out / loss / str(t)
        folder.parent.mkdir(parents=True, exist_ok=True)
        overrides = [*args.data, *COMMON, *draw(loss, t, args.seed), f"train.steps={args.steps}",
                     f"train.seed={t}", f"name={loss}", *args.extra]  # name: the arm, for report by=name
        return f"{loss} {t}: {trial(folder, overrides, deadline)}  ({' '.join(draw(loss, t, args.seed))})"

    order = [(loss, t) for t in range(args.trials) for loss in args.losses]  # trial-major: a cut study stays even
    with ThreadPoolExecutor(max(args.jobs, 1)) as pool:
        for line in pool.map(lambda job: one(*job), order):
            print(line, flush=True)
    cpu = sum(os.times()[2:4]) - cpu
    print(f"study: {time.perf_counter() - start:.0f} s wall, {cpu:.0f} s CPU of the trials", flush=True)
    subprocess.run([*GANRUN, "report", str(args.out), "by=name"], check=True)


if __name__ == "__main__":
    main()
