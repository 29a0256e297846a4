"""Training-step throughput: ganrun's step against a bare hand-written loop of the same models.

    python bench/throughput.py [--quick] [--device auto] [--models mlp dcgan28 dcgan32 dcgan64]
                               [--losses gan wgan-gp] [--batches 64 128] [--steps 50] [--rounds 3]
                               [--precision 32|bf16] [--compile] [--channels-last]

For every (model, loss, batch) it builds G and D from ganrun's configs once, copies them (same
initial weights) into two arms, and times, in the same process and on the same device, after
warm-up: (a) ganrun's objective step (ganrun.training.objectives.Adversarial.step) as fit() calls it (statistics on every 50th step, like the
default train.log_every) and (b) a plain loop written out below with the same loss, optimizer,
n_critic and batch. Both arms read the same batches from a tensor already on the device, so this
measures the training step, not the data. The arms alternate over --rounds and the best round of
each counts. Prints config, device, steps/s, images/s (real images through D per second) and the
ratio ganrun / bare. --precision bf16, --compile and --channels-last apply to both arms alike
(bf16: autocast around the forward passes, as train.precision=bf16 does). Then the data path
alone: batches/s of ganrun's dataset batching, resident on the device and from the host.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import time
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from torch import Tensor, nn

from ganrun import config
from ganrun.config.targets import instantiate
from ganrun.models.build import build_models
from ganrun.artifacts.networks import pick_device
from ganrun.training.build import build_optimizer
from ganrun.training.build import objective as build_objective
from ganrun.training.precision import Precision

# name -> (model overrides, data shape)
MODELS = {
    "mlp": (["model=mlp"], (1, 28, 28)),
    "dcgan28": (["model=dcgan"], (1, 28, 28)),
    "dcgan32": (["model=dcgan"], (3, 32, 32)),
    "dcgan64": (["model=dcgan"], (3, 64, 64)),
}
LOG_EVERY = 50  # the default train.log_every: the only steps that compute statistics


def compose_cfg(overrides: list[str]):
    with initialize_config_module(config_module="ganrun.configs", version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def cycle(data: Tensor, batch: int) -> Iterator[Tensor]:
    """Endless batches sliced from a device tensor (the same for both arms)."""
    for i in itertools.cycle(range(data.shape[0] // batch)):
        yield data[i * batch:(i + 1) * batch]


def bare_step(loss_name: str, gp_weight: float, dtype: torch.dtype | None) -> Callable[..., None]:
    """A hand-written GAN step: n_critic D updates, then one G update (autocast to dtype if given)."""

    def step(G: nn.Module, D: nn.Module, opt_G, opt_D, batches: Iterator[Tensor], n_critic: int) -> None:
        D_plain = getattr(D, "_orig_mod", D)  # double backward through the uncompiled critic
        for _ in range(n_critic):
            real = next(batches)
            z = torch.randn(real.shape[0], G.latent_dim, device=real.device)
            with torch.autocast(real.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                if n_critic == 1:
                    fake = G(z)
                else:
                    with torch.no_grad():
                        fake = G(z)
                real_out, fake_out = D(real).float(), D(fake.detach()).float()
                if loss_name == "gan":
                    loss_D = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
                else:
                    loss_D = fake_out.mean() - real_out.mean()
                    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
                    x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
                    (grad,) = torch.autograd.grad(D_plain(x_hat).sum(), x_hat, create_graph=True)
                    loss_D = loss_D + gp_weight * (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
            opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            opt_D.step()
        with torch.autocast(real.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            if n_critic > 1:
                fake = G(torch.randn(real.shape[0], G.latent_dim, device=real.device))
            for p in D.parameters():
                p.requires_grad_(False)
            fake_out = D(fake).float()
            loss_G = F.softplus(-fake_out).mean() if loss_name == "gan" else -fake_out.mean()
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        for p in D.parameters():
            p.requires_grad_(True)
        opt_G.step()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_arm(run_steps: Callable[[int], None], steps: int, device: torch.device) -> float:
    """Seconds for `steps` steps."""
    sync(device)
    start = time.perf_counter()
    run_steps(steps)
    sync(device)
    return time.perf_counter() - start


def bench_one(model: str, loss_name: str, batch: int, device: torch.device, steps: int, rounds: int,
              warmup: int, precision: str = "32", compile_: bool = False,
              channels_last: bool = False) -> tuple[float, float]:
    """(ganrun steps/s, bare steps/s) for one configuration."""
    overrides, shape = MODELS[model]
    cfg = compose_cfg([*overrides, f"loss={loss_name}"])
    torch.manual_seed(0)
    G0, D0 = build_models(cfg.model, shape)
    n_critic = cfg.train.n_critic
    memory = torch.channels_last if channels_last and len(shape) == 3 else torch.contiguous_format
    data = torch.randn(batch * 8, *shape, device=device).clamp_(-1, 1)
    if len(shape) == 3:
        data = data.contiguous(memory_format=memory)
    amp = Precision(precision, device.type)
    arms = {}
    for name in ("ganrun", "bare"):
        G, D = (copy.deepcopy(m).to(device, memory_format=memory).train() for m in (G0, D0))
        opt_G = build_optimizer(cfg.optimizer, G.parameters(), cfg.optimizer.lr_g, device)
        opt_D = build_optimizer(cfg.optimizer, D.parameters(), cfg.optimizer.lr_d, device)
        if compile_:
            G, D = torch.compile(G), torch.compile(D)
        batches = cycle(data, batch)
        if name == "ganrun":
            objective = build_objective(cfg, D)  # the loss and its recipe's regularizers, as a run builds them
            counter = itertools.count(1)

            def run_steps(k: int, G=G, D=D, opt_G=opt_G, opt_D=opt_D, batches=batches, objective=objective,
                          counter=counter) -> None:
                for _ in range(k):
                    objective.step(G, D, opt_G, opt_D, batches,  # n_critic: the objective's, from cfg
                                   want_stats=next(counter) % LOG_EVERY == 0, precision=amp)
        else:
            gp = (cfg.regularizers or {}).get("gp")
            step = bare_step(loss_name, float(gp.weight) if gp else 0.0, amp.dtype)

            def run_steps(k: int, G=G, D=D, opt_G=opt_G, opt_D=opt_D, batches=batches, step=step) -> None:
                for _ in range(k):
                    step(G, D, opt_G, opt_D, batches, n_critic)
        run_steps(warmup)
        arms[name] = run_steps
    best = {name: float("inf") for name in arms}
    for _ in range(rounds):  # alternate the arms so drift (clocks, other load) hits both alike
        for name, run_steps in arms.items():
            best[name] = min(best[name], time_arm(run_steps, steps, device))
    return steps / best["ganrun"], steps / best["bare"]


def bench_data(device: torch.device, batch: int, n: int, mnist: str | None) -> list[tuple[str, float]]:
    """batches/s of ganrun's own dataset batching (what fit() reads), with the set resident on the
    device (dataset.on_device=true) and gathered on the host, copied through pinned memory (false)."""
    sets = [("mnist-sample", ["dataset=mnist-sample"])]
    if mnist:
        sets.append(("mnist", ["dataset=mnist", f"dataset.root={mnist}", "dataset.download=false"]))
    out = []
    for (name, overrides), resident in itertools.product(sets, (True, False)):
        data = instantiate(compose_cfg([*overrides, f"dataset.on_device={str(resident).lower()}"]).dataset, "dataset")
        name = f"{name} {'resident' if resident else 'host copy'}"
        it = data.batches(batch, device, seed=0)
        next(it)
        sync(device)
        start = time.perf_counter()
        for _ in range(n):
            x = next(it)
        x.sum().item()
        out.append((name, n / (time.perf_counter() - start)))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--losses", nargs="+", default=["gan", "wgan-gp"], choices=["gan", "wgan-gp"])
    p.add_argument("--batches", nargs="+", type=int, default=[64, 128])
    p.add_argument("--steps", type=int, default=50, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", default="32", choices=["32", "bf16"])
    p.add_argument("--compile", action="store_true", help="torch.compile G and D in both arms")
    p.add_argument("--channels-last", action="store_true", help="channels-last conv models and data in both arms")
    p.add_argument("--quick", action="store_true", help="5 timed steps, 2 rounds, batch 64 only")
    p.add_argument("--mnist", default=None, help="a folder of MNIST IDX files, to time the full set's batching too")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.rounds, args.batches = 5, 2, [64]
    config.register()
    device = pick_device(config.Device(args.device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    header = ("config", "device", "ganrun steps/s", "bare steps/s", "ganrun images/s", "ratio")
    rows = []
    for model, loss_name, batch in itertools.product(args.models, args.losses, args.batches):
        g, b = bench_one(model, loss_name, batch, device, args.steps, args.rounds, max(2, args.steps // 5),
                         args.precision, args.compile, args.channels_last)
        n_critic = 5 if loss_name == "wgan-gp" else 1
        rows.append((f"{model} {loss_name} b{batch}", device.type, f"{g:.2f}", f"{b:.2f}",
                     f"{g * batch * n_critic:.0f}", f"{g / b:.3f}"))
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    extras = [f"precision {args.precision}"] + ["compile"] * args.compile + ["channels_last"] * args.channels_last
    print(f"\n{args.steps} timed steps x {args.rounds} rounds (best round), {', '.join(extras)}, "
          f"torch {torch.__version__}, {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}")
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print("\ndata path alone (batch 64):")
    for name, rate in bench_data(device, 64, 200 if args.quick else 2000, args.mnist):
        print(f"  {name:<24} {rate:,.0f} batches/s")


if __name__ == "__main__":
    main()
