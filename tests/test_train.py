"""Short trainings for every model x loss, in-process on tiny data, and the training step itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TINY, TINY_MODEL, compose_train, run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganrun.artifacts import checkpoint
from ganrun.training import losses
from ganrun.training.objectives import Adversarial
from ganrun.training.run import run

LOSSES = ["gan", "minimax", "wgan", "wgan-gp", "hinge", "lsgan"]


def scalars(run_dir: Path) -> dict[str, list]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0}).Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]} | {"images": acc.Tags()["images"]}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_every_model_and_loss_trains(tmp_path, model, loss):
    cfg = compose_train(f"model={model}", f"loss={loss}", *TINY, *TINY_MODEL[model])
    summary = run(cfg, tmp_path)
    assert summary["status"] == "completed" and summary["step"] == 4
    assert json.loads((tmp_path / "summary.json").read_text())["losses"] == summary["losses"]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.pt", "step_000002.pt",
                                                                            "step_000004.pt"]
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["config"]["loss"]["_target_"] == cfg.loss._target_
    tb = scalars(tmp_path)
    assert [e.step for e in tb["loss/D"]] == [2, 4] and "grad_norm/G" in tb and "grad_norm/D" in tb
    assert "steps_per_s" in tb and tb["images"] == ["samples"]
    if loss in ("gan", "minimax"):
        assert "D(x)" in tb and "D(G(z))" in tb
    if loss.startswith("wgan"):
        assert "critic/wasserstein" in tb
    if loss == "wgan-gp":
        assert tb["loss/penalty"][-1].value > 0
    if loss == "wgan":  # clipping held after every critic step
        assert all(p.abs().max() <= 0.01 for p in ckpt["D"].values() if p.is_floating_point())


@pytest.mark.parametrize("dataset", ["ring", "grid"])
def test_toy_runs_write_scatter_plots(tmp_path, dataset):
    cfg = compose_train(f"dataset={dataset}", "model=mlp", "train.eval_every=2", *TINY, *TINY_MODEL["mlp"])
    summary = run(cfg, tmp_path)
    assert set(summary["metrics"]) == {"modes", "hq_percent", "reverse_kl", "energy"}
    assert 0 <= summary["metrics"]["modes"] <= (8 if dataset == "ring" else 25)
    assert [e.step for e in scalars(tmp_path)["eval/modes"]] == [2, 4]
    from PIL import Image

    png = Image.open(tmp_path / "samples" / "step_000004.png")
    assert png.mode == "RGB" and png.size[0] > 200


def test_ema_generator_is_kept_and_averages(tmp_path):
    cfg = compose_train("train.ema=0.9", *TINY, *TINY_MODEL["dcgan"])
    run(cfg, tmp_path)
    ckpt = checkpoint.load(tmp_path)
    assert ckpt["G_ema"].keys() == ckpt["G"].keys()
    k = next(k for k, v in ckpt["G"].items() if v.is_floating_point() and v.dim() > 1)
    assert not torch.equal(ckpt["G_ema"][k], ckpt["G"][k])


def test_ema_generator_gets_batchnorm_statistics_of_its_own_weights():
    from ganrun.models.build import build_models
    from ganrun.training.callbacks import EMA

    from types import SimpleNamespace

    from ganrun.training.callbacks import Callback, Run

    class ReadsAt3(Callback):  # a preview every 3 steps
        def reads_sampler(self, step: int) -> bool:
            return step == 3

    cfg = compose_train(*TINY, *TINY_MODEL["dcgan"])
    torch.manual_seed(0)
    G, _ = build_models(cfg.model, (1, 28, 28))
    ema = EMA(1e-9, rampup=0.0)  # G_ema's weights become G's
    exp = SimpleNamespace(G=G, batch_size=8)
    ema.setup(Run(exp, None, None, 1, 4, None, {}, [], callbacks=[ema, ReadsAt3()]))
    with torch.no_grad():
        G.net[0].weight.mul_(3.0)  # G moves; its own running statistics stay those of the old weights
    ema.after_step(1, {})  # not a step anything reads G_ema at: weights averaged, statistics untouched
    bn = ema.G_ema.net[1]
    assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
    ema.after_step(3, {})  # a preview step: statistics recomputed for the averaged weights
    z = torch.randn(512, G.latent_dim)
    with torch.no_grad():
        h = ema.G_ema.net[0](z.view(512, -1, 1, 1))  # what the first BatchNorm sees
    var = h.var(dim=(0, 2, 3))
    assert torch.allclose(bn.running_var, var, rtol=0.2)  # the statistics of G_ema's own activations
    assert not torch.allclose(bn.running_var, G.net[1].running_var, rtol=0.5)  # not G's stale ones (still 1)
    assert not ema.G_ema.training and not bn.training  # G_ema stays in eval mode


def test_run_folder_is_never_reused(tmp_path):
    cfg = compose_train(*TINY, *TINY_MODEL["mlp"], "model=mlp", "dataset=ring")
    run(cfg, tmp_path)
    from ganrun.config import ConfigError

    with pytest.raises(ConfigError, match="already holds a run"):
        run(cfg, tmp_path)


def test_same_seed_same_weights(tmp_path):
    cfg = compose_train(*TINY, *TINY_MODEL["dcgan"])
    run(cfg, tmp_path / "a")
    run(cfg, tmp_path / "b")
    a, b = (checkpoint.load(tmp_path / r)["G"] for r in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


class Counting(torch.nn.Module):
    """Wraps G to count forward calls."""

    def __init__(self, G):
        super().__init__()
        self.G, self.calls, self.latent_dim = G, 0, G[0].in_features

    def forward(self, z):
        self.calls += 1
        return self.G(z)


@pytest.mark.parametrize("n_critic, g_calls", [(1, 1), (5, 6)])
def test_one_fake_batch_serves_both_steps_when_n_critic_is_1(n_critic, g_calls):
    G = Counting(torch.nn.Sequential(torch.nn.Linear(4, 2)))
    D = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Flatten(0))
    opt_G, opt_D = torch.optim.SGD(G.parameters(), 0.1), torch.optim.SGD(D.parameters(), 0.1)
    batches = iter(lambda: torch.randn(8, 2), None)
    d_before = D[0].weight.clone()
    out = Adversarial(losses.NonSaturating(), n_critic=n_critic).step(G, D, opt_G, opt_D, batches, want_stats=False)
    assert G.calls == g_calls
    assert not torch.equal(D[0].weight, d_before)
    # stats only on logging steps; E[sign D(real)] every step (adaptive augmentation reads it), no host sync
    assert set(out) == {"loss/D", "loss/G", "loss/penalty", "health/d_real_sign"}
    assert all(isinstance(v, torch.Tensor) for v in out.values())  # no host sync inside the step


def test_g_step_leaves_d_weights_alone():
    G = Counting(torch.nn.Sequential(torch.nn.Linear(4, 2)))
    D = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Flatten(0))
    opt_G, opt_D = torch.optim.SGD(G.parameters(), 0.1), torch.optim.SGD(D.parameters(), 0.0)  # D frozen by lr 0
    batches = iter(lambda: torch.randn(8, 2), None)
    g_before = G.G[0].weight.clone()
    Adversarial(losses.NonSaturating()).step(G, D, opt_G, opt_D, batches, want_stats=True)
    assert not torch.equal(G.G[0].weight, g_before)
    assert all(p.requires_grad for p in D.parameters())  # restored after the G step


def test_health_signals():
    from ganrun.training.health import health

    real = torch.randn(16, 1, 4, 4)
    varied = health(real, real.flip(0), torch.ones(16))
    assert varied["health/diversity"].item() == pytest.approx(1.0)
    assert varied["health/d_real_sign"].item() == 1.0
    collapsed = health(real, real[:1].expand(16, -1, -1, -1) + 1e-3 * torch.randn(16, 1, 4, 4),
                       torch.tensor([1.0, -1.0] * 8))
    assert collapsed["health/diversity"].item() < 0.01 and collapsed["health/d_real_sign"].item() == 0.0


def test_health_of_a_conditional_generator_counts_pairs_within_a_class():
    from ganrun.training.health import Monitor, health

    torch.manual_seed(0)
    labels = torch.arange(16) % 4
    real = torch.randn(16, 1, 4, 4)
    one_per_class = torch.randn(4, 1, 4, 4)[labels]  # G ignores z: one image per class
    assert health(real, one_per_class)["health/diversity"].item() > 0.5  # across classes it looks varied
    within = health(real, one_per_class, labels=labels)["health/diversity"].item()
    assert within == 0.0
    monitor = Monitor()
    said = {step: monitor(step, {"health/diversity": within}) for step in range(50, 550, 50)}
    assert "mode collapse" in said[450][0] and not any(said[step] for step in range(50, 450, 50))
    varied = health(real, torch.randn(16, 1, 4, 4), labels=labels)["health/diversity"].item()
    assert 0.7 < varied < 1.3
    # within-class pairs only: hand-made 1-D distances
    x = torch.tensor([[0.0], [1.0], [10.0], [13.0]])
    y = torch.tensor([[0.0], [2.0], [10.0], [14.0]])
    out = health(y, x, labels=torch.tensor([0, 0, 1, 1]))["health/diversity"].item()
    assert out == pytest.approx((1 + 3) / (2 + 4))


def test_monitor_warns_of_a_signal_that_lasts_once_with_remedies(caplog):
    from ganrun.training.health import Monitor

    monitor = Monitor()
    stats = {"health/diversity": 0.05, "D(x)": 0.99, "D(G(z))": 0.001}
    said = {step: monitor(step, stats) for step in range(50, 700, 50)}
    assert not any(said[step] for step in range(50, 450, 50))  # not yet LASTS (400) steps
    assert len(said[450]) == 2
    assert said[450][0].startswith("step 450: possible mode collapse: G's samples have been under 0.25x as "
                                   "spread out as the data since step 50 (0.05x now); try loss=wgan-gp")
    assert "D has won outright since step 50" in said[450][1] and "loss.real_label=0.9" in said[450][1]
    assert not any(said[step] for step in range(500, 700, 50))  # once while it lasts
    assert monitor(700, {**stats, "health/diversity": 0.4, "D(G(z))": 0.05}) == []  # better, not yet clear
    fine = {"health/diversity": 0.9, "D(x)": 0.7, "D(G(z))": 0.3}
    assert [Monitor()(step, fine) for step in range(50, 1000, 50)] == [[]] * 19
    # a signal that passes within LASTS steps is never warned of (a fresh G, D's first wins)
    short = Monitor()
    assert [short(step, stats if step < 400 else fine) for step in range(1, 1000, 1)] == [[]] * 999


def test_monitor_takes_a_warning_back_when_it_passes_and_watches_again(caplog):
    """The labelled emoji's default run: G's samples of a class alike from the start to about step 1,000,
    then spread out. The warning is taken back when it passes, and a later collapse is warned of again."""
    import logging

    from ganrun.training.health import Monitor

    caplog.set_level(logging.INFO)
    monitor, fair = Monitor(), {"D(x)": 0.7, "D(G(z))": 0.3}
    curve = {50: 0.1, 100: 0.08, 500: 0.16, 750: 0.2, 1500: 0.27, 2000: 0.61, 3000: 1.0, 3500: 0.1, 4000: 0.1}
    said = {step: monitor(step, {**fair, "health/diversity": d}) for step, d in curve.items()}
    assert said[100] == [] and "possible mode collapse" in said[500][0] and "since step 50 (0.16x now)" in said[500][0]
    assert said[750] == said[1500] == said[3000] == said[3500] == []
    assert said[2000] == ["step 2000: G's samples are spread out again (0.61x the data's): the possible mode "
                          "collapse warned of has passed"]
    assert "step 4000: possible mode collapse" in said[4000][0] and "since step 3500" in said[4000][0]
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO", "WARNING"]
    # D's win is taken back the same way
    d_wins = {"health/diversity": 1.0, "D(x)": 0.99, "D(G(z))": 0.001}
    assert "spread out again" in monitor(5000, d_wins)[0]
    assert "D has won outright since step 5000" in monitor(5400, d_wins)[0]
    assert monitor(5500, {**d_wins, "D(G(z))": 0.2}) == ["step 5500: G fools D again (D(G(z)) = 0.200): D's win "
                                                          "warned of has passed"]


@pytest.mark.parametrize("option", ["model.pack=2", "model.minibatch_std=true", "model.spectral_norm=true",
                                    "train.ema=0.99", "loss.real_label=0.9", "loss.flip_prob=0.1",
                                    "model.d_dropout=0.3", "optimizer.lr_d=4e-4", "regularizers=[r1]",
                                    "regularizers=[dragan]", "regularizers=[unroll]"])
def test_every_stabiliser_composes_and_trains(tmp_path, option):
    cfg = compose_train(option, *TINY, *TINY_MODEL["dcgan"])
    assert run(cfg, tmp_path)["status"] == "completed"


def test_pack_must_divide_the_batch():
    from ganrun import config
    from ganrun.config import ConfigError

    with pytest.raises(ConfigError, match="train.batch_size=8 must be a multiple of model.pack=3"):
        config.validate(compose_train("model.pack=3", *TINY))


def test_lr_factor_by_hand():
    from ganrun.training.callbacks import lr_factor

    assert lr_factor("constant", 7, 10) == 1.0
    assert [lr_factor("linear", s, 4) for s in (1, 2, 3, 4)] == [1.0, 0.75, 0.5, 0.25]
    assert [round(lr_factor("cosine", s, 4), 6) for s in (1, 2, 3, 4)] == [1.0, round((1 + 2 ** -0.5) / 2, 6), 0.5,
                                                                           round((1 - 2 ** -0.5) / 2, 6)]


@pytest.mark.parametrize("schedule, last_factor", [("constant", 1.0), ("linear", 0.25), ("cosine", 0.5 * (1 - 2 ** -0.5))])
def test_lr_schedule_sets_both_learning_rates(tmp_path, schedule, last_factor):
    cfg = compose_train(*TINY, "dataset=ring", "model=mlp", "model.hidden=[8]", "train.steps=4",
                        f"train.lr_schedule={schedule}", "optimizer.lr_g=1e-3", "optimizer.lr_d=2e-3")
    run(cfg, tmp_path)
    ckpt = checkpoint.load(tmp_path)
    assert ckpt["opt_G"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * last_factor)
    assert ckpt["opt_D"]["param_groups"][0]["lr"] == pytest.approx(2e-3 * last_factor)


def test_unknown_lr_schedule_is_one_line():
    from ganrun import config
    from ganrun.config import ConfigError

    with pytest.raises(ConfigError, match="train.lr_schedule='step': use constant, linear, cosine"):
        config.validate(compose_train("train.lr_schedule=step", *TINY))


def test_a_new_callback_is_a_class_and_a_config_node_and_the_loop_does_not_change(tmp_path):
    from plugin_pkg.callbacks import Counter

    extra = ["plugins=[plugin_pkg]", "+callbacks.counter={_target_:plugin_pkg.callbacks.Counter,every:3}",
             "train.log_every=100"]
    cfg = compose_train(*TINY, *TINY_MODEL["dcgan"], *extra)  # 4 steps, checkpoints every 2
    Counter.made.clear()
    summary = run(cfg, tmp_path / "a")
    counter = Counter.made[-1]
    assert counter.before == [1, 2, 3, 4] and counter.ended == 4 and summary["counted"] == 4
    assert counter.after == [(1, False), (2, False), (3, True), (4, True)]  # it asked for step 3; 4: the last
    ckpt = checkpoint.load(tmp_path / "a" / "checkpoints" / "step_000002.pt")
    assert ckpt["counter"] == 2  # its state in the checkpoint: the checkpoints come after it
    run(compose_train(*TINY, *TINY_MODEL["dcgan"], *extra, f"resume={tmp_path / 'a' / 'checkpoints' / 'step_000002.pt'}"),
        tmp_path / "b")
    resumed = Counter.made[-1]
    assert resumed.restored == 2 and resumed.before == [3, 4]


def test_a_callback_from_a_yaml_of_ones_own(tmp_path):
    (tmp_path / "conf" / "callbacks").mkdir(parents=True)
    (tmp_path / "conf" / "callbacks" / "counter.yaml").write_text(
        "counter:\n  _target_: plugin_pkg.callbacks.Counter\n  every: 2\n")
    env = {"PYTHONPATH": str(ROOT / "tests")}
    r = run_cli("train", "--config-dir", str(tmp_path / "conf"), "callbacks=[default,counter]", "plugins=[plugin_pkg]",
                *TINY, *TINY_MODEL["dcgan"], f"hydra.run.dir={tmp_path / 'r'}", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["counted"] == 4


@pytest.mark.slow
def test_conditional_dcgan_draws_varied_images_within_a_class(tmp_path):
    """The regression test for the conditional collapse (G ignored z: one image per class). With D's
    projection head, health/diversity within a class stayed at 0.13-0.21 from step 100 to 2,000 on the
    default data; with the one-hot input planes it climbs past 0.6 by step 1,000."""
    cfg = compose_train("model.conditional=true", "train.steps=1000", "train.log_every=100",
                        "train.sample_every=1000", "train.ckpt_every=0", "train.eval_n=500", "train.progress=false")
    run(cfg, tmp_path)
    diversity = [e.value for e in scalars(tmp_path)["health/diversity"]]
    assert min(diversity[-2:]) > 0.5, diversity


def test_resnet_trains_on_32px_digits_with_its_recipe_keys(tmp_path):
    cfg = compose_train("model=resnet", "model.g_width=8", "model.d_width=8", "model.latent_dim=8",
                        "dataset.image_size=32", "loss=hinge", "train.n_critic=2", *TINY)
    summary = run(cfg, tmp_path)
    assert summary["status"] == "completed" and summary["metrics"]["fd"] > 0
    assert checkpoint.load(tmp_path)["G"]["linear.weight"].shape == (4 * 4 * 8, 8)


def test_conditional_auto_uses_labels_when_the_data_has_them(tmp_path):
    from ganrun.training.build import build

    cfg = compose_train(*TINY, *TINY_MODEL["dcgan"])  # model.conditional=auto (dcgan's default)
    assert cfg.model.conditional == "auto"
    exp = build(cfg)
    assert exp.model["conditional"] is True and exp.G.n_classes == 10 and exp.D.planes is not None
    assert cfg.model.conditional == "auto"  # the config is left as it was: build settles it for itself
    ring = compose_train("dataset=ring", *TINY, *TINY_MODEL["dcgan"])
    assert build(ring).G.embed is None and build(ring).model["conditional"] is False  # no labels
    drs = compose_train(*TINY, *TINY_MODEL["dcgan"], "train.drs=true")
    assert build(drs).G.embed is None  # rejection sampling needs an unconditional G
    off = compose_train(*TINY, *TINY_MODEL["dcgan"], "model.conditional=false", "train.clusters=0")
    assert build(off).G.embed is None
    # the checkpoint keeps the resolved value; resuming an unconditional run under auto stays unconditional
    run(off, tmp_path / "plain")
    assert checkpoint.load(tmp_path / "plain")["config"]["model"]["conditional"] is False
    resumed = run(compose_train(*TINY, *TINY_MODEL["dcgan"], "train.steps=6", f"resume={tmp_path / 'plain'}"),
                  tmp_path / "plain")
    assert resumed["status"] == "completed" and checkpoint.load(tmp_path / "plain")["config"]["model"]["conditional"] is False
