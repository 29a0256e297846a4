"""Every option of every config group composes and instantiates; bad keys and values are named."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT, SHARED_DATA, TINY, TINY_MODEL, compose_train, needs_shared_mnist, run_cli
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganrun import config
from ganrun.config import ConfigError, targets
from ganrun.training import losses
from ganrun.models.build import build_models
from ganrun.training.augment import unaugmented
from ganrun.training.build import build, build_optimizer
from ganrun.training.eager import eager

GROUPS = {g: sorted(p.stem for p in (ROOT / "configs" / g).glob("*.yaml"))
          for g in ("dataset", "model", "loss", "optimizer", "regularizers", "logger", "callbacks")}


def test_groups_have_the_documented_options():
    assert GROUPS["dataset"] == ["cifar10", "fashion-mnist", "folder", "gauss1d", "grid", "hf", "mnist",
                                 "mnist-sample", "ring", "stacked-mnist", "zip"]
    assert GROUPS["model"] == ["dcgan", "mlp", "resnet", "vae"]
    assert GROUPS["loss"] == ["gan", "hinge", "lsgan", "minimax", "rpgan", "wgan", "wgan-gp"]
    assert GROUPS["optimizer"] == ["adam", "rmsprop"]
    assert GROUPS["regularizers"] == ["clip", "dragan", "gp", "lecam", "mode_seeking", "r1", "r2", "topk", "unroll"]
    assert GROUPS["logger"] == ["mlflow", "tensorboard", "wandb"] and GROUPS["callbacks"] == ["default"]


@pytest.mark.parametrize("name", GROUPS["regularizers"])
def test_every_regularizer_option_composes_and_builds(name):
    from ganrun.training.regularizers import Regularizer

    cfg = compose_train("dataset=ring", "model=mlp", f"regularizers=[{name}]")
    config.validate(cfg)
    regs = build(cfg).objective.regularizers
    assert len(regs) == 1 and isinstance(regs[0], Regularizer)


def test_every_callback_composes_and_takes_its_settings_from_train():
    from ganrun.training.build import build_callbacks
    from ganrun.training.callbacks import Callback

    cfg = compose_train("train.sample_every=7", "train.eval_n=123", "train.ema=0.9", "train.lr_schedule=linear",
                        "train.augment=[flip]", "train.ada_target=0.6")
    config.validate(cfg)
    built = {type(c).__name__: c for c in build_callbacks(cfg)}
    assert list(built) == ["LRSchedule", "EMA", "AdaptiveAugment", "SkippedUpdates", "ScalarLog", "Previews",
                           "Evaluation", "Checkpoints"] and all(isinstance(c, Callback) for c in built.values())
    assert built["Previews"].every == 7 and built["Evaluation"].n == 123 and built["EMA"].decay == 0.9
    # their settings turn some off: no EMA, no ADA, a constant learning rate
    off = [type(c).__name__ for c in build_callbacks(compose_train("train.ema=0"))]
    assert "EMA" not in off and "AdaptiveAugment" not in off and "LRSchedule" not in off and off[-1] == "Checkpoints"


def test_default_config():
    cfg = compose_train()
    assert cfg.dataset._target_ == "ganrun.data.digits.mnist_sample"
    assert cfg.model._target_ == "ganrun.models.dcgan.make"
    assert cfg.loss._target_ == "ganrun.training.losses.NonSaturating"
    assert cfg.model.latent_dim == 100 and cfg.train.n_critic == 1
    config.validate(cfg)


# (loss option, loss class, optimizer class, lr, betas, n_critic): each paper's recipe
RECIPES = [
    ("gan", losses.NonSaturating, torch.optim.Adam, 2e-4, (0.5, 0.999), 1),
    ("minimax", losses.Minimax, torch.optim.Adam, 2e-4, (0.5, 0.999), 1),
    ("wgan", losses.Wasserstein, torch.optim.RMSprop, 5e-5, None, 5),
    ("wgan-gp", losses.Wasserstein, torch.optim.Adam, 1e-4, (0.0, 0.9), 5),
    ("hinge", losses.Hinge, torch.optim.Adam, 2e-4, (0.5, 0.999), 1),
    ("lsgan", losses.LeastSquares, torch.optim.Adam, 2e-4, (0.5, 0.999), 1),
]


@pytest.mark.parametrize("name, loss_cls, opt_cls, lr, betas, n_critic", RECIPES)
def test_each_loss_brings_its_recipe(name, loss_cls, opt_cls, lr, betas, n_critic):
    cfg = compose_train(f"loss={name}", "dataset=ring", "model=mlp", "model.hidden=[8]")
    config.validate(cfg)
    exp = build(cfg)
    assert type(exp.objective.loss) is loss_cls
    assert cfg.train.n_critic == n_critic
    for opt in (exp.opt_G, exp.opt_D):
        assert type(opt) is eager(opt_cls)  # torch's class, past its torch.compile hooks
        assert opt.param_groups[0]["lr"] == pytest.approx(lr)
        if betas:
            assert opt.param_groups[0]["betas"] == pytest.approx(betas)
    regs = exp.objective.regularizers
    if name == "wgan":
        assert [type(r).__name__ for r in regs] == ["WeightClip"] and regs[0].bound == 0.01
    elif name == "wgan-gp":
        assert [type(r).__name__ for r in regs] == ["GradientPenalty"] and regs[0].weight == 10.0
        assert cfg.model.d_norm == "layer"
    else:
        assert regs == []


def test_command_line_beats_the_recipe():
    cfg = compose_train("loss=wgan", "optimizer=adam", "optimizer.lr_d=3e-4", "train.n_critic=2")
    assert cfg.optimizer._target_ == "torch.optim.Adam"
    assert cfg.optimizer.lr_d == 3e-4 and cfg.optimizer.lr_g == 5e-5 and cfg.train.n_critic == 2


def test_rmsprop_ignores_a_recipes_adam_betas():
    cfg = compose_train("loss=wgan-gp", "optimizer=rmsprop", "dataset=ring", "model=mlp")
    exp = build(cfg)
    assert type(exp.opt_D) is eager(torch.optim.RMSprop) and exp.opt_D.param_groups[0]["lr"] == 1e-4


def test_separate_learning_rates():
    cfg = compose_train("optimizer.lr_g=1e-3", "optimizer.lr_d=4e-4", "dataset=ring", "model=mlp")
    exp = build(cfg)
    assert exp.opt_G.param_groups[0]["lr"] == 1e-3 and exp.opt_D.param_groups[0]["lr"] == 4e-4


@pytest.mark.parametrize("model", GROUPS["model"])
@pytest.mark.parametrize("dataset", ["ring", "grid", "mnist-sample"])
def test_models_build_for_datasets(model, dataset):
    cfg = compose_train(f"model={model}", f"dataset={dataset}",
                        *(["dataset.image_size=32"] if model == "resnet" and dataset == "mnist-sample" else []))
    config.validate(cfg)
    if model == "resnet" and dataset != "mnist-sample":
        with pytest.raises(ConfigError, match="model=resnet is for images; use model=mlp"):
            build(cfg)
        return
    exp = build(cfg)
    z = torch.randn(3, exp.G.latent_dim)
    fake = exp.G(z)
    assert fake.shape == (3, *exp.data.shape)
    if model == "vae":  # the encoder in D's place: the mean and log-variance of q(z | x)
        assert [t.shape for t in exp.D(fake)] == [(3, exp.G.latent_dim)] * 2
    else:
        assert exp.D(fake).shape == (3,)


@needs_shared_mnist
@pytest.mark.parametrize("name, folder", [("mnist", "mnist"), ("fashion-mnist", "fashion-mnist")])
def test_idx_datasets_from_local_files(name, folder):
    cfg = compose_train(f"dataset={name}", f"dataset.root={SHARED_DATA / folder}", "dataset.download=false",
                        "dataset.split=test")
    data = build(cfg).data
    assert len(data) == 10_000 and data.shape == (1, 28, 28)


def test_cifar10_composes_and_reports_missing_files(tmp_path):
    cfg = compose_train("dataset=cifar10", f"dataset.root={tmp_path}", "dataset.download=false")
    config.validate(cfg)
    with pytest.raises(ValueError, match="dataset.root"):
        build(cfg)


def test_folder_dataset_composes(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (40, 30), (i * 80, 10, 200)).save(tmp_path / f"{i}.png")
    cfg = compose_train("dataset=folder", f"dataset.root={tmp_path}", "dataset.image_size=32", "dataset.workers=0")
    exp = build(cfg)
    assert exp.data.shape == (3, 32, 32)
    assert exp.G(torch.randn(2, 100)).shape == (2, 3, 32, 32)


def test_every_model_key_reaches_the_networks():
    cfg = compose_train("model.width=8", "model.latent_dim=16", "model.d_dropout=0.25", "model.spectral_norm=true",
                        "model.d_norm=none")
    exp = build(cfg)
    assert exp.G.latent_dim == 16
    mods = list(exp.D.modules())
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.25 for m in mods)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in mods)
    assert any(torch.nn.utils.parametrize.is_parametrized(m) for m in mods)
    assert unaugmented(exp.D).net[0].out_channels == 8


@pytest.mark.parametrize("d_condition", ["input", "projection"])
def test_d_condition_reaches_the_conditional_discriminator(d_condition):
    D = unaugmented(build(compose_train("model.conditional=true", "model.width=4", f"model.d_condition={d_condition}")).D)
    assert (D.planes is not None, D.embed is not None) == (d_condition == "input", d_condition == "projection")
    assert D.net[0].in_channels == (11 if d_condition == "input" else 1)


def test_toy_and_image_options():
    ring = build(compose_train("dataset=ring", "dataset.n_modes=6", "dataset.radius=2.0", "model=mlp")).data
    assert ring.centers.shape == (6, 2) and ring.centers.norm(dim=1).allclose(torch.tensor(2.0))
    grid = build(compose_train("dataset=grid", "model=mlp")).data
    assert sorted(set(grid.centers[:, 0].tolist())) == [-4, -2, 0, 2, 4] and grid.sigma == 0.05


def test_loss_options_reach_the_loss():
    exp = build(compose_train("loss.real_label=0.9", "loss.flip_prob=0.05", "dataset=ring", "model=mlp"))
    assert exp.objective.loss.real_label == 0.9 and exp.objective.loss.flip_prob == 0.05
    exp = build(compose_train("loss=wgan", "regularizers.clip.bound=0.05", "dataset=ring", "model=mlp"))
    assert exp.objective.regularizers[0].bound == 0.05
    exp = build(compose_train("loss=wgan-gp", "regularizers.gp.weight=1", "dataset=ring", "model=mlp"))
    assert exp.objective.regularizers[0].weight == 1


# ---------------------------------------------------------------- bad input is named


def test_unknown_group_option_lists_the_valid_ones():
    with pytest.raises(ConfigCompositionException, match="(?s)loss/nope.*Available options.*wgan-gp"):
        compose_train("loss=nope")


def test_unknown_train_key_is_named():
    with pytest.raises(HydraException, match="stepz"):
        compose_train("train.stepz=5")


def test_wrong_type_is_named():
    with pytest.raises((HydraException, OmegaConfBaseException), match="(?s)steps.*abc|abc.*steps"):
        compose_train("train.steps=abc")


def test_device_choices_are_listed():
    with pytest.raises((HydraException, OmegaConfBaseException)) as e:
        compose_train("train.device=gpu")
    assert "train.device" in str(e.value) and "[auto, cpu, cuda]" in str(e.value.__cause__)


@pytest.mark.parametrize("override, message", [
    ("+loss.gp_weight=3", "loss.gp_weight is not a ganrun key; use regularizers.gp.weight=X"),
    ("+loss.margin=3", "loss.margin: unknown key for ganrun.training.losses.NonSaturating; allowed keys: real_label, flip_prob"),
    ("regularizers=[r1]", None),
    ("+regularizers.r1.gama=3", "regularizers.r1.gama: unknown key for ganrun.training.regularizers.R1; allowed keys: gamma"),
    ("+callbacks.ema.decey=3", "callbacks.ema.decey: unknown key for ganrun.training.callbacks.EMA; allowed keys: decay, rampup"),
    ("model.width=wide", "model.width='wide': expected int or one of auto"),
    ("model.d_norm=group", "model.d_norm='group': expected one of batch, layer, none"),
    ("loss.real_label=yes", "loss.real_label='yes': expected float"),
    ("train.steps=0", "train.steps=0: must be >= 1"),
    ("train.batch_size=-1", "train.batch_size=-1: must be >= 1"),
    ("train.ema=1.0", "train.ema=1.0"),
    ("optimizer.lr_g=0", "must be > 0"),
    ("dataset._target_=os.system", "dataset._target_='os.system' is not allowed"),
    ("model._target_=subprocess.run", "is not allowed"),
    ("loss._target_=ganrun.losses.Nope", "no such class or function"),
])
def test_bad_values_fail_before_any_work(override, message):
    cfg = compose_train(*(["regularizers=[r1]"] if "regularizers.r1" in override else []), override)
    if message is None:  # a good value, for contrast
        config.validate(cfg)
        return
    with pytest.raises(ConfigError) as e:
        config.validate(cfg)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_folder_root_is_named():
    with pytest.raises(ConfigError, match="dataset.root is required: add dataset.root=... to the command line"):
        config.validate(compose_train("dataset=folder"))


def test_dcgan_refuses_other_sizes():
    with pytest.raises(ConfigError, match="dataset.image_size"):
        build(compose_train("dataset.image_size=48"))


def test_optimizer_target_allowlist():
    with pytest.raises(ConfigError, match="not allowed"):
        build_optimizer(OmegaConf.create({"_target_": "os.system", "lr_g": 1.0}), [], 1.0)


def test_models_from_a_checkpoint_config_round_trip():
    cfg = compose_train("model=mlp", "dataset=ring")
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    G, D = build_models(OmegaConf.create(plain["model"]), (2,))
    assert G(torch.randn(4, 100)).shape == (4, 2)


EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))
SHAPES = {"gauss1d": (1,), "ring": (2,), "grid": (2,), "cifar10": (3, 32, 32), "stacked-mnist": (3, 28, 28),
          "colour32": (3, 32, 32)}
ANY_DATASET = {"colour32"}  # recipes for a user's own images: the dataset is theirs to pick


def test_the_documented_recipes_exist():
    assert EXPERIMENTS == ["cifar10", "cifar10-resnet", "colour32", "fashion-mnist", "gauss1d", "grid", "mnist",
                           "mnist-sample", "ring", "stacked-mnist"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_recipe_composes_validates_and_builds(name):
    cfg = compose_train(f"experiment={name}")
    config.validate(cfg)
    dataset = name.removesuffix("-resnet")
    if name in ANY_DATASET:
        assert "dataset" not in OmegaConf.load(ROOT / "configs" / "experiment" / f"{name}.yaml")
    else:
        assert cfg.dataset._target_.endswith(dataset.replace("-", "_"))  # each recipe is for its own dataset
    G, D = build_models(cfg.model, SHAPES.get(dataset, (1, 28, 28)))
    z = torch.randn(cfg.train.batch_size, G.latent_dim)
    assert D(G(z)).shape == (cfg.train.batch_size // cfg.model.get("pack", 1),)
    build_optimizer(cfg.optimizer, G.parameters(), cfg.optimizer.lr_g)


def test_experiment_recipe_composes_and_the_command_line_wins():
    cfg = compose_train("experiment=mnist-sample", "train.steps=7")
    assert cfg.dataset._target_ == "ganrun.data.digits.mnist_sample" and cfg.model.width == 64
    assert cfg.train.batch_size == 32 and cfg.train.steps == 7
    config.validate(cfg)


def test_the_fashion_recipe_reaches_the_networks_and_wins_over_the_loss_recipe():
    """experiment=fashion-mnist: G at width 32 beside D's 64, Adam at 1e-3 for both over loss=gan's 2e-4,
    and the command line still over the recipe."""
    cfg = compose_train("experiment=fashion-mnist")
    assert (cfg.optimizer.lr_g, cfg.optimizer.lr_d) == (1e-3, 1e-3) and cfg.train.precision == "auto"
    G, D = build_models(cfg.model, (1, 28, 28))
    assert [m.out_channels for m in G.net if isinstance(m, torch.nn.ConvTranspose2d)][-3:] == [64, 32, 1]
    assert next(m for m in D.modules() if isinstance(m, torch.nn.Conv2d)).out_channels == 64
    mine = compose_train("experiment=fashion-mnist", "optimizer.lr_d=2e-4", "loss=hinge")
    assert (mine.optimizer.lr_g, mine.optimizer.lr_d) == (1e-3, 2e-4)


def test_the_colour_recipe_ignores_the_labels_and_sizes_g_apart_from_d(tmp_path):
    """experiment=colour32 on a user's labelled ZIP: G at width 32 beside D's auto 40, 1e-3 for both, the labels
    replaced by clusters (model.conditional=false), and the user's own keys still win."""
    import zipfile

    from PIL import Image

    from ganrun.training.build import build

    with zipfile.ZipFile(tmp_path / "own.zip", "w") as z:
        for i in range(12):
            path = f"{i % 2}/{i}.png"
            Image.new("RGB", (40, 40), (20 * i, 200 if i % 2 else 30, 90)).save(tmp_path / "x.png")
            z.write(tmp_path / "x.png", path)
    own = ["dataset=zip", f"dataset.path={tmp_path / 'own.zip'}", "dataset.image_size=32", "train.batch_size=4"]
    cfg = compose_train("experiment=colour32", *own, "train.clusters=3")
    config.validate(cfg)
    assert (cfg.optimizer.lr_g, cfg.optimizer.lr_d, cfg.train.steps) == (1e-3, 1e-3, 7000)
    exp = build(cfg)
    assert exp.data.pseudo and exp.G.n_classes == 3  # clusters, not the two sub-folders' labels
    assert [m.out_channels for m in exp.G.net if isinstance(m, torch.nn.ConvTranspose2d)][-2:] == [32, 3]
    assert next(m for m in exp.D.modules() if isinstance(m, torch.nn.Conv2d)).out_channels == 40
    mine = compose_train("experiment=colour32", *own, "optimizer.lr_g=2e-4", "model.conditional=auto")
    assert (mine.optimizer.lr_g, mine.model.conditional) == (2e-4, "auto")


# ---------------------------------------------------------------- plugins: targets from the user's own package


def test_a_loss_from_the_users_own_package_trains_when_its_package_is_a_plugin(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests"))  # the user's package is importable
    (tmp_path / "conf" / "loss").mkdir(parents=True)  # and their own YAML names it, as the docs say
    (tmp_path / "conf" / "loss" / "margin.yaml").write_text("_target_: plugin_pkg.losses.MarginLeastSquares\n"
                                                            "margin: 2.0\n")
    args = ["--config-dir", str(tmp_path / "conf"), "loss=margin", "dataset=ring", "model=mlp", *TINY,
            *TINY_MODEL["mlp"]]
    r = run_cli("train", *args, f"hydra.run.dir={tmp_path / 'no'}")
    assert r.returncode == 2 and "add your own package with plugins=[NAME]" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("train", *args, "plugins=[plugin_pkg]", f"hydra.run.dir={tmp_path / 'yes'}")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "yes" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["losses"]["loss/D"] > 0
    r = run_cli("sample", f"ckpt={tmp_path / 'yes'}", "n=4", f"out={tmp_path / 'g.png'}")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("plugin", ["os", "subprocess", "torch", "builtins"])
def test_the_standard_library_cannot_be_a_plugin(plugin):
    with pytest.raises(ConfigError, match=f"plugins=\\[{plugin}\\]: give your own package"):
        targets.allow_plugins([plugin])
    targets.allow_plugins([])
