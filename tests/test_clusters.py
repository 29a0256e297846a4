"""train.clusters: balanced k-means pseudo-classes, the conditional GAN trained on them, and the
first-layer shortcut that keeps a many-class D as cheap as a one-class one."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_MODEL, compose_train, run_cli
from PIL import Image

from ganrun import data
from ganrun.artifacts import checkpoint
from ganrun.config import ConfigError, validate
from ganrun.config.targets import instantiate
from ganrun.data import clusters
from ganrun.metrics import rejection
from ganrun.models import dcgan
from ganrun.training.run import run


def test_balanced_assign_by_hand():
    # rows 0-2 all prefer column 0, which holds 2 (ceil(4 / 2)); row 1 is the dearest there and moves
    cost = torch.tensor([[0.0, 5.0], [2.0, 3.0], [1.0, 9.0], [4.0, 0.0]])
    assert clusters.balanced_assign(cost).tolist() == [0, 1, 0, 1]
    # five rows, three columns of room 2: columns 0 and 1 fill, column 2 takes the one left
    cost = torch.tensor([[0.0, 1.0, 2.0]]).repeat(5, 1)
    assert torch.bincount(clusters.balanced_assign(cost), minlength=3).tolist() == [2, 2, 1]


def test_balanced_assign_fills_every_column_evenly():
    cost = torch.rand(1003, 10, generator=torch.Generator().manual_seed(0)) ** 4
    cost[:, 0] = 0  # every row prefers column 0
    sizes = torch.bincount(clusters.balanced_assign(cost), minlength=10)
    assert sizes.sum() == 1003 and int(sizes.max()) == 101 and int(sizes.min()) >= 1003 - 9 * 101


def test_balanced_kmeans_finds_equal_blobs_and_evens_unequal_ones():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = centres.repeat_interleave(200, 0) + 0.3 * torch.randn(600, 2, generator=g)
    labels, found = clusters.balanced_kmeans(x, 3)
    truth = torch.arange(3).repeat_interleave(200)
    for k in range(3):  # each cluster is one blob, whole
        assert torch.bincount(truth[labels == k], minlength=3).max() == 200
    assert torch.cdist(found, centres).min(dim=1).values.max() < 0.2
    # 400 points in one blob, 200 in another, 2 clusters: equal sizes, so 100 of the big blob join the small
    uneven = torch.cat([x[:200], x[:200] + 0.01, x[200:400]])
    labels, _ = clusters.balanced_kmeans(uneven, 2)
    assert torch.bincount(labels).tolist() == [300, 300]


def test_image_features_are_the_leading_principal_components():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 1, 8, 8), generator=g, dtype=torch.uint8)
    f = clusters.image_features(images, dims=5)
    x = images.float().flatten(1) / 127.5 - 1
    x = x - x.mean(0)
    variances = torch.linalg.svdvals(x).pow(2)
    assert f.shape == (300, 5)
    assert torch.allclose(f.double().pow(2).sum(0).sort(descending=True).values, variances[:5].double(), rtol=1e-3)


def test_clustered_images_serve_clusters_and_keep_the_real_labels():
    d = data.mnist_sample()
    wrapped = clusters.wrap(d, 7, seed=0)
    assert wrapped.n_classes == 7 and wrapped.labels is d.labels and wrapped.pseudo
    sizes = torch.bincount(wrapped.classes)
    assert int(sizes.sum()) == 5000 and int(sizes.max()) == 715 and int(sizes.min()) >= 5000 - 6 * 715
    x, y = next(wrapped.batches(64, torch.device("cpu"), labels=True))
    # each image's label is its cluster: find the images in the stored set
    stored = data.to_unit_range(d.images).flatten(1)
    index = torch.cdist(x.flatten(1), stored).argmin(dim=1)
    assert torch.equal(y, wrapped.classes[index])
    # a checkpoint's clusters are used as they are, not fitted again
    saved = torch.roll(wrapped.classes, 1)
    again = clusters.wrap(d, 7, seed=0, saved=saved)
    assert again.classes is saved


def test_clustered_points_take_the_nearest_centre():
    grid = data.grid()
    wrapped = clusters.wrap(grid, 25, seed=0)
    assert torch.cdist(wrapped.classes.double(), grid.centers.double()).min(dim=1).values.max() < 0.01
    x, y = next(wrapped.batches(500, torch.device("cpu"), labels=True))
    assert torch.equal(y, torch.cdist(x, wrapped.classes).argmin(dim=1))
    assert torch.equal(next(wrapped.batches(500, torch.device("cpu"))), x)  # the same points, labelled or not


@pytest.mark.parametrize("size, channels, spectral", [(28, 1, False), (32, 3, True), (64, 3, False)])
def test_plane_conv_equals_the_conv_of_the_image_with_its_class_planes(size, channels, spectral):
    _, D = dcgan.make((channels, size, size), conditional=True, n_classes=7, spectral_norm=spectral)
    D.eval()
    x = torch.randn(5, channels, size, size)
    weight = D.net[0].weight
    for y in (torch.tensor([0, 3, 6, 2, 2]), None):
        planes = D.planes(x, y)  # (N, C + 7, H, W): the image beside its one-hot planes
        expected = torch.nn.functional.conv2d(planes, weight, None, 2, 1)
        assert (dcgan.plane_conv(x, y, weight) - expected).abs().max() <= 1e-6 * expected.abs().max()


def test_bad_cluster_settings_are_refused_before_any_work():
    cases = [(["train.clusters=1"], r"use auto, 0 \(off\) or K >= 2"),
             (["train.clusters=-3"], r"use auto, 0 \(off\) or K >= 2"),
             (["train.clusters=many"], r"train.clusters=many: use auto, 0 \(off\) or K >= 2"),
             (["train.clusters=10", "model=vae"], "model=vae has no class input"),
             (["train.clusters=10", "model.pack=2", "model.conditional=auto"], "model.pack=2")]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message):
            validate(compose_train(*overrides))
    for overrides, message in [(["train.mode_seeking=-1"], r"use auto, 0 \(off\) or a weight > 0"),
                               (["train.mode_seeking=lots"], r"train.mode_seeking=lots: use auto"),
                               (["train.mode_seeking=0.5", "regularizers=[mode_seeking]"], "set the same term twice")]:
        with pytest.raises(ConfigError, match=message):
            validate(compose_train(*overrides))
    r = run_cli("train", "train.clusters=1", "hydra.run.dir=/nonexistent/never")
    assert r.returncode == 2 and r.stderr.strip().endswith("train.clusters=1: use auto, 0 (off) or K >= 2 pseudo-classes, "
                                                           "e.g. train.clusters=50")


def test_too_many_clusters_for_the_data_is_one_line(tmp_path):
    cfg = compose_train(*TINY, *TINY_MODEL["dcgan"], "train.clusters=6000")
    with pytest.raises(ConfigError, match="use 2 to 5000 clusters"):
        run(cfg, tmp_path / "r")


def test_clustered_run_end_to_end(tmp_path):
    """A run on mnist-sample without its labels, with train.clusters: conditional on the clusters, saved with
    them, scored as one unconditional set (no hit rate against digit labels), sampled from every cluster,
    resumed with the same clusters."""
    plain = ["model.conditional=false", "train.clusters=12"]
    first = run(compose_train(*TINY, *TINY_MODEL["dcgan"], *plain), tmp_path / "r")
    assert "fd" in first["metrics"] and "hit_rate" not in first["metrics"] and "drs_fd" not in first["metrics"]
    ckpt = checkpoint.load(tmp_path / "r")
    assert ckpt["config"]["model"]["conditional"] is True and ckpt["data"]["n_classes"] == 12
    sizes = torch.bincount(ckpt["data"]["clusters"])
    assert len(sizes) == 12 and int(sizes.max()) == 417 and int(sizes.min()) >= 5000 - 11 * 417
    out = tmp_path / "s.npy"
    r = run_cli("sample", f"ckpt={tmp_path / 'r'}", "n=24", f"out={out}")
    assert r.returncode == 0, r.stderr
    assert np.load(out).shape == (24, 1, 28, 28) and not out.with_suffix(".labels.npy").exists()
    r = run_cli("sample", f"ckpt={tmp_path / 'r'}", "n=24", f"out={tmp_path / 'grid.png'}")
    assert r.returncode == 0 and Image.open(tmp_path / "grid.png").size[0] > 0
    resumed = compose_train(*TINY, *TINY_MODEL["dcgan"], *plain, "train.steps=6", f"resume={tmp_path / 'r'}")
    run(resumed, tmp_path / "r")
    assert torch.equal(checkpoint.load(tmp_path / "r")["data"]["clusters"], ckpt["data"]["clusters"])


def test_class_shares_by_hand():
    assert clusters.class_shares(torch.tensor([300, 100, 0]), 8).tolist() == [6, 2, 0]  # in proportion
    assert clusters.class_shares(torch.tensor([5, 1000]), 10).tolist() == [1, 10]  # every class at least one
    assert clusters.class_shares(torch.tensor([3, 3]), 50).tolist() == [3, 3]  # never more than its images


def test_clusters_within_labels_split_each_class_and_remember_its_class():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])  # class 0: the first two blobs; class 1: the third
    x = centres.repeat_interleave(100, 0) + 0.3 * torch.randn(300, 2, generator=g)
    labels = torch.tensor([0] * 200 + [1] * 100)
    found = clusters.within_classes(x, labels, 3)
    assert len(found[:100].unique()) == 1 and len(found[100:200].unique()) == 1 and found[0] != found[100]
    assert sorted({int(found[0]), int(found[100])}) == [0, 1] and set(found[200:].tolist()) == {2}
    assert clusters.parents_of(found, labels).tolist() == [0, 0, 1]


def test_asking_for_a_class_draws_one_of_its_clusters():
    from types import SimpleNamespace

    from ganrun.models.common import asked_classes, class_inputs

    G = SimpleNamespace(n_classes=5, class_of=torch.tensor([0, 0, 1, 1, 1]))
    asked = torch.tensor([0, 1] * 500)
    inputs = class_inputs(G, asked, seed=3)
    assert torch.equal(G.class_of[inputs], asked)  # always a cluster of the asked class
    assert int(torch.bincount(inputs, minlength=5).min()) > 130  # each of its clusters, about equally (250, 167)
    assert torch.equal(class_inputs(G, asked, seed=3), inputs) and asked_classes(G) == 2
    plain = SimpleNamespace(n_classes=5, class_of=None)
    assert class_inputs(plain, asked) is asked and asked_classes(plain) == 5


def test_clusters_within_labels_end_to_end(tmp_path):
    """On a labelled set, clusters are fitted within its classes: each holds one digit, the checkpoint keeps
    each cluster's class, the run is scored per digit (hit rate), and `ganrun sample` asks for digits."""
    summary = run(compose_train(*TINY, *TINY_MODEL["dcgan"], "train.clusters=20"), tmp_path / "r")
    assert "hit_rate" in summary["metrics"] and "intra_fd" in summary["metrics"]
    ckpt = checkpoint.load(tmp_path / "r")
    class_of = torch.as_tensor(ckpt["data"]["class_of"])
    assert ckpt["data"]["n_classes"] == 20 and class_of.tolist() == [c for c in range(10) for _ in range(2)]
    assert torch.equal(class_of[ckpt["data"]["clusters"]], data.mnist_sample().labels)
    out = tmp_path / "s.npy"
    r = run_cli("sample", f"ckpt={tmp_path / 'r'}", "n=20", f"out={out}")
    assert r.returncode == 0, r.stderr
    assert np.load(out.with_suffix(".labels.npy")).tolist() == [c for c in range(10) for _ in range(2)]
    r = run_cli("sample", f"ckpt={tmp_path / 'r'}", "classes=[12]", f"out={tmp_path / 'g.png'}")
    assert r.returncode == 2 and "from 0 to 9" in r.stderr


def test_a_sample_set_draws_every_class_and_a_grid_ten_rows():
    """`ganrun sample n=N out=X.npy` of a 12-class G draws all 12 classes equally; a picture shows 10 rows."""
    from ganrun.commands.sample import sample_labels

    labels, _ = sample_labels(12, 24, None, every=True)
    assert labels.tolist() == [c for c in range(12) for _ in range(2)]
    rows, per_row = sample_labels(12, 24, None)
    assert len(rows) == 24 and len(rows.unique()) == 10 and per_row == 3
    assert sample_labels(12, 6, [3, 5], every=True)[0].tolist() == [3, 3, 3, 5, 5, 5]  # classes= still rules


def test_conditional_drs_judges_each_sample_with_its_class():
    """D's logit depends on the class: with D rating class 1 far above class 0, DRS keeps class 1's samples."""

    class G(torch.nn.Module):
        n_classes, latent_dim, latent = 2, 2, "gaussian"

        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))  # where the sampler looks up the device

        def forward(self, z, y):
            return z + 10 * y[:, None].float()  # class 1 sits at (10, 10)

    class D(torch.nn.Module):
        def forward(self, x, y):
            return 8.0 * y.float()

    x, info = rejection.sample(G(), D(), 400, torch.Generator().manual_seed(0))
    assert x.shape == (400, 2) and (x[:, 0] > 5).float().mean() > 0.99
    assert 0.45 < info["accept_rate"] < 0.55


def test_conditional_drs_proposes_in_the_class_mix_it_is_given():
    """D's logit is a ratio within a class (its fakes had the data's classes in training), so the kept
    samples come in the proposals' class mix: given a pool of 90% class 0, 90% of them are class 0; asked
    for class 1 alone (`ganrun sample classes=1 drs=true`), all are class 1. Drawing the classes in turn
    instead (the old proposal) would keep half of each."""

    class G(torch.nn.Module):
        n_classes, latent_dim, latent = 2, 2, "gaussian"

        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z, y):
            return z + 10 * y[:, None].float()

    class D(torch.nn.Module):
        def forward(self, x, y):
            return -0.5 * (x[:, 1] - 10 * y.float()).clamp(-3, 3)  # the same in either class: none favoured

    pool = torch.tensor([0] * 9 + [1])
    x, _ = rejection.sample(G(), D(), 2000, torch.Generator().manual_seed(0), classes=pool)
    assert abs(float((x[:, 0] > 5).float().mean()) - 0.1) < 0.03
    x, y, _ = rejection.draw(G(), D(), 2000, torch.Generator().manual_seed(0), classes=pool)
    assert torch.equal(y, (x[:, 0] > 5).long())  # each kept sample's own class, for `ganrun sample`'s labels

    class Turning(torch.nn.Module):  # logit 0 on the first pool, then nothing passes: the fallback keeps the best
        calls = 0

        def forward(self, x, y):
            self.calls += 1
            return torch.zeros(len(x)) if self.calls == 1 else x[:, 0] - 50

    x, y, info = rejection.draw(G(), Turning(), 50, torch.Generator().manual_seed(0), budget=2, classes=pool)
    assert info["filled"] == 50 and torch.equal(y, (x[:, 0] > 5).long()) and y.sum() == 50  # class 1: largest x_0
    x, _ = rejection.sample(G(), D(), 300, torch.Generator().manual_seed(0), classes=torch.tensor([1]))
    assert bool((x[:, 0] > 5).all())


def test_a_clustered_grid_trains_and_filters_with_drs(tmp_path):
    summary = run(compose_train(*TINY, *TINY_MODEL["mlp"], "dataset=grid", "model=mlp", "model.latent_dim=2",
                                "train.clusters=25", "train.drs=true"), tmp_path / "g")
    assert {"modes", "drs_modes"} <= set(summary["metrics"])
    G = checkpoint.load(tmp_path / "g")
    assert G["data"]["clusters"].shape == (25, 2)


def test_sample_with_drs_proposes_the_classes_asked_for(tmp_path, monkeypatch):
    """`ganrun sample classes=3 drs=true` hands the sampler class 3 alone; without classes=, all 25."""
    from ganrun.commands import sample as sample_cmd

    run(compose_train(*TINY, *TINY_MODEL["mlp"], "dataset=grid", "model=mlp", "model.latent_dim=2",
                      "train.clusters=25", "train.drs=true", "train.steps=2"), tmp_path / "g")
    seen = []
    real_draw = rejection.draw

    def spy(*args, classes=None, **kwargs):
        seen.append(set(classes.tolist()))
        return real_draw(*args, classes=classes, **kwargs)

    monkeypatch.setattr(rejection, "draw", spy)
    ckpt = checkpoint.load(tmp_path / "g")
    x, _, labels = sample_cmd.generate(ckpt, 50, 0, torch.device("cpu"), classes=[3], drs=True)
    assert len(x) == 50 and seen[-1] == {3} and labels.tolist() == [3] * 50  # the kept samples' own classes
    _, _, labels = sample_cmd.generate(ckpt, 100, 0, torch.device("cpu"), drs=True)
    assert seen[-1] == set(range(25)) and len(labels) == 100 and len(set(labels.tolist())) > 10


def test_clusters_on_an_image_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    g = np.random.default_rng(0)
    for i in range(24):  # two kinds: dark and bright images
        level = 30 if i % 2 else 220
        Image.fromarray((level + g.integers(0, 20, (28, 28))).astype(np.uint8)).save(folder / f"{i}.png")
    d = data.ImageFolder(str(folder), image_size=28, channels=1, workers=0)
    wrapped = clusters.wrap(d, 2, seed=0)
    assert torch.bincount(wrapped.classes).tolist() == [12, 12]
    x, y = next(wrapped.batches(16, torch.device("cpu"), labels=True))
    bright = (x.mean(dim=(1, 2, 3)) > 0).long()
    assert len(set(zip(y.tolist(), bright.tolist()))) == 2  # each cluster holds one kind


def test_auto_picks_k_from_the_set_size():
    from ganrun.data.clusters import auto_count

    assert [auto_count(n) for n in (100, 499, 500, 1500, 3781, 5000, 60000)] == [0, 0, 10, 15, 38, 50, 50]


@pytest.mark.parametrize("overrides, expected", [
    ([], (0, False)),  # the default run uses the sample's labels
    (["model.conditional=false"], (50, False)),  # labels not used: 50 clusters of the 5,000 digits
    (["model.conditional=false", "train.clusters=0"], (0, False)),
    (["train.clusters=0"], (0, False)),  # the digits' labels alone
    (["model.conditional=false", "model=vae"], (0, False)),  # no class input
    (["model.conditional=false", "model.pack=2"], (0, False)),
    (["model.conditional=false", "train.drs=true"], (0, False)),  # rejection sampling needs an unconditional G
    (["model.conditional=true", "train.clusters=12"], (12, True)),  # a number is taken as given
    (["dataset=ring", "model=mlp"], (0, False)),  # points: their own recipes
])
def test_clusters_auto_conditions_on_clusters_only_where_labels_are_not_used(overrides, expected, caplog):
    import logging

    from ganrun.training.build import cluster_count

    cfg = compose_train(*overrides)
    data = instantiate(cfg.dataset, "dataset")
    with caplog.at_level(logging.INFO):
        assert cluster_count(cfg, data) == expected
    assert ("train.clusters=auto:" in caplog.text) == (expected[0] > 0 and "train.clusters=12" not in overrides)
    if expected[0] and "train.clusters=12" not in overrides:
        assert "train.clusters=auto: mnist-sample's labels are not used, so" in caplog.text


def test_clusters_auto_says_when_the_set_has_no_labels(caplog):
    import logging

    from ganrun.training.build import cluster_count

    cfg = compose_train()
    data = instantiate(cfg.dataset, "dataset")
    data.n_classes = 0  # as a user's folder of images without sub-folders
    with caplog.at_level(logging.INFO):
        assert cluster_count(cfg, data) == (50, False)
    assert "train.clusters=auto: mnist-sample has no labels, so G and D are conditioned on 50" in caplog.text


@pytest.mark.parametrize("overrides, said", [
    ([], "model.conditional=false ignores them and conditions G and D on 50 k-means clusters of the images"),
    (["train.clusters=0"], "model.conditional=false trains an unconditional GAN"),
    (["model.pack=2"], None),  # packing: auto leaves the labels unused, so no line
])
def test_the_labels_line_says_what_conditional_false_would_train(overrides, said, caplog):
    """model.conditional=auto's start-up line names the alternative, and a run that takes it does just that."""
    import logging

    from ganrun.training.build import build, cluster_count

    with caplog.at_level(logging.INFO):
        build(compose_train(*overrides, "train.batch_size=16"))
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("model.conditional=auto:")]
    assert line == ([f"model.conditional=auto: G and D see the dataset's 10 class labels ({said})"] if said else [])
    if said:
        cfg = compose_train(*overrides, "model.conditional=false")
        k = cluster_count(cfg, instantiate(cfg.dataset, "dataset"))[0]
        assert k == (50 if "50 k-means" in said else 0)


@pytest.mark.parametrize("overrides, on, colour, expected", [
    ([], "clusters", True, (0.2, 0)),  # clusters of unlabelled colour images: each cluster's samples spread
    ([], "labels", True, (0.2, 1000)),  # labelled colour images: for the first 1,000 steps only
    ([], "clusters", False, (0.0, 0)),  # grey: it cost the digits confidence
    ([], "labels", False, (0.0, 0)),
    ([], "", True, (0.0, 0)),  # clusters within the labels, or a plain GAN: nothing added
    (["train.mode_seeking=0"], "labels", True, (0.0, 0)),
    (["train.mode_seeking=0.5"], "", False, (0.5, 0)),  # a number is taken as given, on any run, every step
    (["regularizers=[mode_seeking]"], "labels", True, (0.0, 0)),  # the user's own term, at its own weight
    (["model=vae"], "clusters", True, (0.0, 0)),  # no G-side adversarial term to add it to
])
def test_mode_seeking_auto_spreads_the_samples_of_colour_runs(overrides, on, colour, expected, caplog):
    import logging

    from ganrun.training.build import mode_seeking

    with caplog.at_level(logging.INFO):
        assert mode_seeking(compose_train(*overrides), on, colour) == expected
    assert ("train.mode_seeking=auto:" in caplog.text) == (expected[0] > 0 and not overrides)
    assert ("for its first 1000 steps" in caplog.text) == (expected[1] > 0)


def test_mode_seeking_auto_keeps_what_a_checkpoint_settled(caplog):
    from ganrun.training.build import mode_seeking

    cfg = compose_train()
    assert mode_seeking(cfg, "labels", True, saved=[0.0, 0]) == (0.0, 0)  # a rule added since changes nothing
    assert mode_seeking(cfg, "", False, saved=[0.2, 1000]) == (0.2, 1000)
    assert mode_seeking(compose_train("train.mode_seeking=0.3"), "labels", True, saved=[0.2, 1000]) == (0.3, 0)
    assert "train.mode_seeking=auto:" not in caplog.text


def test_an_unconditional_run_self_conditions_by_default_and_says_so(tmp_path, caplog):
    import logging

    from ganrun.training.run import run

    with caplog.at_level(logging.INFO):
        summary = run(compose_train(*TINY, *TINY_MODEL["dcgan"], "model.conditional=false", "train.steps=2"),
                      tmp_path)
    assert summary["status"] == "completed"
    assert "conditioned on 50 k-means clusters" in caplog.text and "mode seeking" not in caplog.text  # grey
    ckpt = checkpoint.load(tmp_path)
    assert ckpt["config"]["model"]["conditional"] is True and len(ckpt["data"]["clusters"]) == 5000


def mode_seeking_weights(exp) -> list[float]:
    from ganrun.training.regularizers import ModeSeeking

    return [r.weight for r in exp.objective.regularizers if isinstance(r, ModeSeeking)]


def mode_seeking_terms(exp) -> list[tuple[float, int]]:
    from ganrun.training.regularizers import ModeSeeking

    return [(r.weight, r.until) for r in exp.objective.regularizers if isinstance(r, ModeSeeking)]


def colour_folder(folder, n=40, size=16):
    """n unlabelled colour images: a random colour each, with a square of another somewhere."""
    g = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.ones((size, size, 3)) * g.integers(0, 256, 3)
        x, y = g.integers(0, size - 4, 2)
        img[y:y + 4, x:x + 4] = g.integers(0, 256, 3)
        Image.fromarray(img.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_the_built_objective_carries_mode_seeking_only_on_a_self_conditioned_colour_run(tmp_path, caplog):
    import logging

    from ganrun.training.build import build

    folder = ["dataset=folder", f"dataset.root={colour_folder(tmp_path / 'set')}", "dataset.image_size=32",
              "dataset.workers=0"]

    def spread(*overrides):
        return mode_seeking_weights(build(compose_train(*TINY, *TINY_MODEL["dcgan"], *overrides)))

    with caplog.at_level(logging.INFO):
        assert spread(*folder, "train.clusters=4") == [0.2]  # 4 clusters of colour images without labels
    assert "train.mode_seeking=auto: G is conditioned on clusters of colour images" in caplog.text
    assert spread(*folder) == []  # 40 images: too few for auto clusters, so a plain GAN
    assert spread("model.conditional=false") == []  # 50 clusters of the grey digits
    assert spread("model.conditional=false", "train.mode_seeking=0.2") == [0.2]  # asked for: on any run
    assert spread() == []  # the digits' labels
    assert spread("regularizers=[mode_seeking]", *folder, "train.clusters=4") == [1.0]  # the user's, once


def test_a_checkpoint_from_before_mode_seeking_resumes_without_it(tmp_path):
    from ganrun.training.build import build

    cfg = compose_train(*TINY, *TINY_MODEL["dcgan"], "dataset=folder", f"dataset.root={colour_folder(tmp_path / 'set')}",
                        "dataset.image_size=32", "dataset.workers=0", "train.clusters=4", "train.steps=2")
    assert run(cfg, tmp_path / "run")["status"] == "completed"
    ckpt = checkpoint.load(tmp_path / "run")
    assert ckpt["config"]["train"]["mode_seeking"] == "auto"
    assert mode_seeking_weights(build(cfg, ckpt)) == [0.2]  # a run that began with it goes on with it
    del ckpt["mode_seeking"]  # as a checkpoint from before the settled value was kept: the rules then
    assert mode_seeking_weights(build(cfg, ckpt)) == [0.2]
    del ckpt["config"]["train"]["mode_seeking"]  # as a checkpoint written before the key existed
    assert mode_seeking_weights(build(cfg, ckpt)) == []  # goes on as it began


def test_a_labelled_colour_run_spreads_each_class_for_its_first_steps_and_keeps_that_on_resume(tmp_path, caplog):
    """Sub-folders as classes: G conditioned on the labels gets mode seeking to step 1,000, said at start-up,
    kept in the checkpoint; a labelled checkpoint from before the rule resumes without it."""
    import logging

    from ganrun.training.build import build

    for c in ("a", "b"):
        colour_folder(tmp_path / "set" / c, n=20)
    folder = ["dataset=folder", f"dataset.root={tmp_path / 'set'}", "dataset.image_size=32", "dataset.workers=0"]
    cfg = compose_train(*TINY, *TINY_MODEL["dcgan"], *folder, "train.steps=2")
    with caplog.at_level(logging.INFO):
        exp = build(cfg)
    assert exp.data.n_classes == 2 and mode_seeking_terms(exp) == [(0.2, 1000)]
    assert "G is conditioned on the labels of colour images, so for its first 1000 steps" in caplog.text
    grey = compose_train(*TINY, *TINY_MODEL["dcgan"], *folder, "dataset.channels=1")
    assert mode_seeking_terms(build(grey)) == []  # grey labelled images: not measured there, left alone
    assert run(cfg, tmp_path / "run")["status"] == "completed"
    ckpt = checkpoint.load(tmp_path / "run")
    assert ckpt["mode_seeking"] == [0.2, 1000]
    caplog.clear()
    with caplog.at_level(logging.INFO):  # the run's own command to continue it says what it continues
        run(compose_train("train.steps=3", f"resume={tmp_path / 'run'}"), tmp_path / "run")
    assert re.search(r"resume: steps 3 to 3 of the run as it was built \(model.conditional=true, model.width=\d+, "
                     r"train.mode_seeking=0.2 to step 1000, train.aux_classifier=1\)", caplog.text)
    assert "for its first 1000 steps" not in caplog.text  # the start-up line is not repeated
    assert mode_seeking_terms(build(cfg, ckpt)) == [(0.2, 1000)]
    ckpt["mode_seeking"] = [0.0, 0]  # what auto settled to, whatever the rules say now
    assert mode_seeking_terms(build(cfg, ckpt)) == []
    del ckpt["mode_seeking"]  # as a checkpoint written before labelled runs had it
    assert mode_seeking_terms(build(cfg, ckpt)) == []
