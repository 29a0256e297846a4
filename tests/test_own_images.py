"""A user's own images get metrics: a fixed held-out share is the reference, a feature network trained on
the set itself (a classifier of its classes, or without labels one taught which way its images are
turned) embeds them, and every number says which feature space it is in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_MODEL, run_cli
from PIL import Image

from ganrun import data
from ganrun.commands.sweep import results_table
from ganrun.config import ConfigError
from ganrun.data.streamed import held_out_split
from ganrun.metrics.evaluator import Evaluator


def upright_images(folder, n=60, size=16, seed=0):
    """n colour images with a light top and a dark bottom and a coloured square somewhere: which way is up
    can be learnt, so a rotation-taught network has something to learn."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ramp = np.linspace(230, 30, size)[:, None, None] * np.ones((size, size, 3))
        img = ramp * rng.uniform(0.6, 1.0, 3)
        x, y = rng.integers(0, size - 5, 2)
        img[y:y + 5, x:x + 5] = rng.integers(0, 256, 3)
        Image.fromarray(img.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_the_held_out_split_is_fixed_disjoint_and_a_fifth():
    train, test = held_out_split(100)
    assert len(test) == 20 and sorted(train + test) == list(range(100))
    assert held_out_split(100) == (train, test)  # the same images every time
    assert [len(part) for part in held_out_split(2)] == [1, 1]  # a tiny set still has both halves
    assert len(held_out_split(200_000)[1]) == 10_000  # capped


def test_an_unlabelled_folder_is_scored_in_a_self_supervised_space(tmp_path):
    images = data.ImageFolder(str(upright_images(tmp_path / "set")), image_size=16, workers=0)
    assert images.labels is None and images.held_out.startswith("12 of 60 images held out")
    ev = Evaluator(images, n_images=40)
    assert "rotation" in ev.settings["feature_space"] and ev.settings["samples"] == 40
    assert ev.settings["reference"] == images.held_out
    real = images.make_split("train").images[8:48].float().div(127.5).sub(1)
    noise = torch.rand(40, 3, 16, 16) * 2 - 1
    ours, floor = ev.score(real)
    worst, _ = ev.score(noise)
    assert set(ours) == {"fd", "kid", "precision", "recall", "density", "coverage"}  # no classes to count
    assert set(floor) == set(ours)
    assert worst["fd"] > 3 * ours["fd"] and worst["kid"] > ours["kid"]
    assert worst["precision"] < ours["precision"] and worst["coverage"] < ours["coverage"]


def test_a_run_on_an_unlabelled_folder_ends_with_its_metrics_and_their_space(tmp_path):
    root = upright_images(tmp_path / "set", n=40, size=8)
    r = run_cli("train", "dataset=folder", f"dataset.root={root}", "dataset.image_size=8", "dataset.workers=0",
                "model=mlp", *TINY, *TINY_MODEL["mlp"], f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert {"fd", "kid", "precision", "recall"} <= set(summary["metrics"]) and summary["metrics_real"]
    space = summary["metric_settings"]["feature_space"]
    assert "rotation" in space and f"metrics (features: {space}): " in r.stderr + r.stdout
    # ganrun eval on the run scores it in the same space
    r = run_cli("eval", f"ckpt={tmp_path / 'run'}", "n=20", f"out={tmp_path / 'e.json'}")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["settings"]["feature_space"] == space and "fd" in report["metrics"]
    assert "samples_capped" not in report["settings"]  # 20 asked, 20 scored
    # and a set of samples from anywhere, against the same folder, in the same space
    np.save(tmp_path / "s.npy", np.random.default_rng(1).random((50, 3, 8, 8)).astype(np.float32))
    r = run_cli("eval", f"samples={tmp_path / 's.npy'}", "dataset=folder", f"dataset.root={root}",
                "dataset.image_size=8", "dataset.workers=0", f"out={tmp_path / 's.json'}")
    assert r.returncode == 0, r.stderr
    alone = json.loads((tmp_path / "s.json").read_text())
    assert alone["settings"]["feature_space"] == space and alone["metrics"]["fd"] > alone["real"]["fd"]  # noise
    # 50 samples, but the floor has only the 32 training images: the cap is said, not silent
    assert alone["settings"]["samples"] == alone["n"] == 32 and "50 asked; 32 scored" in alone["settings"]["samples_capped"]
    assert alone["n"] == 32  # as many samples as the floor has real images (40 less the 8 held out)


def test_the_table_never_puts_two_feature_spaces_in_one_column():
    runs = [{"run": "a", "overrides": ["x=1"], "status": "completed", "metrics": {"fd": 1.0},
             "metric_settings": {"feature_space": "digits"}},
            {"run": "b", "overrides": ["x=2"], "status": "completed", "metrics": {"fd": 2.0},
             "metric_settings": {"feature_space": "emoji"}}]
    header, body = results_table(runs)
    assert "fd [digits]" in header and "fd [emoji]" in header and "fd" not in header
    a, b = header.index("fd [digits]"), header.index("fd [emoji]")
    assert body[0][a].startswith("1") and body[0][b] == "-" and body[1][b].startswith("2") and body[1][a] == "-"
    same = [dict(r, metric_settings={"feature_space": "digits"}) for r in runs]
    assert "fd" in results_table(same)[0]  # one space: one column, as before


def test_a_report_of_runs_on_several_sets_has_a_table_per_feature_space():
    from ganrun.commands.report import space_tables
    from ganrun.commands.sweep import format_table

    def run(name, fd, space):
        return {"run": name, "overrides": [f"dataset.path={name}.zip"], "status": "completed", "metrics": {"fd": fd},
                "metric_settings": {"feature_space": space}}

    runs = [run("a", 1.0, "zip:a SmallCNN rotation 1"), run("b", 2.0, "zip:b SmallCNN rotation 2"),
            run("c", 3.0, "zip:a SmallCNN rotation 1"),
            {"run": "d", "overrides": ["dataset.path=gone.zip"], "status": "failed", "error": "no such file"}]
    text = space_tables(runs)
    sections = text.split("## ")[1:]
    assert [s.splitlines()[0] for s in sections] == ["Feature space: zip:a SmallCNN rotation 1",
                                                    "Feature space: zip:b SmallCNN rotation 2", "Without metrics"]
    assert "2 runs" in sections[0] and "| a |" in sections[0] and "| c |" in sections[0] and "| b |" not in sections[0]
    assert "| fd |" in sections[0] and "[" not in sections[0].splitlines()[4]  # its own column, unsuffixed
    assert "no such file" in sections[2] and "fd" not in sections[2]
    assert "## " not in space_tables(runs[:1] + runs[2:3])  # one space: the one table, as before
    printed = format_table(runs)  # the table a sweep prints at its end: the same grouping
    assert [line for line in printed.splitlines() if line.startswith(("Feature space", "Without"))] == [
        "Feature space: zip:a SmallCNN rotation 1", "Feature space: zip:b SmallCNN rotation 2", "Without metrics"]
    assert "[" not in printed.splitlines()[1]  # the first table's header: its own fd column


def test_seeds_are_pooled_and_compared_within_one_feature_space_only():
    from ganrun.commands import report
    from ganrun.metrics import seeds

    def run(setting, seed, fd, space):
        return {"run": f"{setting}-{seed}", "status": "completed", "overrides": [setting, f"train.seed={seed}"],
                "metrics": {"fd": fd}, "metric_settings": {"feature_space": space}}

    rows = [run(s, i, fd + i, space) for s, fd, space in (("loss=gan", 10, "emoji"), ("loss=hinge", 30, "emoji"),
                                                          ("loss=lsgan", 50, "digits")) for i in range(3)]
    rows += [run("loss=gan", 3, 90, "digits")]  # the same setting on other data: not pooled with the emoji's
    header, body = seeds.grouped_table(rows)
    assert [(r[0], r[1]) for r in body] == [("loss=gan features=emoji", "3"), ("loss=hinge features=emoji", "3"),
                                            ("loss=lsgan features=digits", "3"),
                                            ("loss=gan features=digits", "1")]
    pairs = seeds.differences(rows)
    assert len(pairs) == 1 and pairs[0].startswith("fd: [loss=gan features=emoji] - [loss=hinge features=emoji]")
    same = [dict(r, metric_settings={"feature_space": "emoji"}) for r in rows[:6]]
    assert seeds.grouped_table(same)[1][0][0] == "loss=gan"  # one space: named as before
    with pytest.raises(ConfigError, match="by=loss: the runs here were scored in 2 feature spaces .digits; emoji."):
        report.budget_choice(rows, {"by": "loss"})


@pytest.mark.parametrize("labelled", [True, False])
def test_the_feature_network_is_trained_once_per_set_and_task(tmp_path, labelled):
    from ganrun.metrics import classifier

    root = upright_images(tmp_path / "set", n=40, size=8)
    if labelled:  # two sub-folders: two classes
        for i, f in enumerate(sorted(root.glob("*.png"))):
            (root / "ab"[i % 2]).mkdir(exist_ok=True)
            f.rename(root / "ab"[i % 2] / f.name)
    images = data.ImageFolder(str(root), image_size=8, workers=0)
    first = Evaluator(images, n_images=16).settings
    assert ("classes" if labelled else "rotation") in first["feature_space"]
    cached = sorted(classifier.cache_dir().glob("*.pt"))
    assert any(("classes" if labelled else "rotation") in p.name for p in cached)
    again = Evaluator(data.ImageFolder(str(root), image_size=8, workers=0), n_images=16).settings
    assert again["feature_space"] == first["feature_space"]  # the same weights, loaded
    assert sorted(classifier.cache_dir().glob("*.pt")) == cached  # nothing trained twice


EMOJI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "emoji" / "emoji-google.zip"


@pytest.mark.slow  # trains the feature network on 3,000 emoji: a minute or two
@pytest.mark.skipif(not EMOJI.is_file(), reason="../shared/data/emoji not present")
@pytest.mark.parametrize("labelled", [True, False])
def test_the_instrument_tells_good_from_bad_on_real_emoji(labelled):
    from torchvision.transforms.functional import gaussian_blur

    emoji = data.ImageZip(str(EMOJI), image_size=64, workers=2)
    ev = Evaluator(emoji if labelled else data.ImageZip(str(EMOJI), image_size=64, labelled=False), n_images=600)
    rest = emoji.make_split("train")
    idx = torch.randperm(len(rest), generator=torch.Generator().manual_seed(5))
    real, classes = rest.images[idx].float().div(127.5).sub(1), rest.labels[idx]
    n = ev.n
    scored = {name: ev.score(x)[0] for name, x in {
        "real": real[:n], "half the classes": real[classes < 4][:n], "blurred": gaussian_blur(real[:n], 9, 2.3),
        "noise": torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1}.items()}
    floor = ev.score(real[:n])[1]
    assert scored["real"]["fd"] < 2 * floor["fd"] + 1  # real images score near the floor
    half, blur = scored["half the classes"], scored["blurred"]
    assert half["precision"] > scored["real"]["precision"] - 0.03 and half["recall"] < scored["real"]["recall"] - 0.05
    assert blur["precision"] < scored["real"]["precision"] - 0.05
    for key in ("fd", "kid"):
        assert scored["noise"][key] == max(s[key] for s in scored.values())
    for key in ("precision", "recall", "density", "coverage"):
        assert scored["noise"][key] == min(s[key] for s in scored.values())


def test_a_conditional_g_is_scored_on_the_classes_in_the_datas_proportions():
    from ganrun.metrics.evaluator import class_draws

    labels = torch.tensor([0] * 550 + [1] * 100 + [2] * 5 + [3] * 345)  # imbalanced, like emoji categories
    drawn = class_draws(1000, 4, labels, seed=0)
    assert torch.bincount(drawn).tolist() == [550, 100, 5, 345] and drawn[:20].unique().numel() > 1  # shuffled
    assert torch.bincount(class_draws(20, 4, torch.tensor([0] * 97 + [1, 2, 3]), 0)).tolist() == [14, 2, 2, 2]
    assert class_draws(8, 4, torch.tensor([0, 1, 2, 3] * 5), 0).tolist() == [0, 1, 2, 3] * 2  # balanced: in turn
    assert class_draws(8, 4, None, 0).tolist() == [0, 1, 2, 3] * 2

    class G(torch.nn.Module):  # asks for what it is given: the labels come back as the classes drawn
        n_classes, pseudo_classes, z_dim = 4, False, 2

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z, y):
            return y.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2)

    ev = Evaluator.__new__(Evaluator)
    ev.data, ev.n = type("Set", (), {"labels": labels})(), 1000
    images, asked = ev.samples(G(), torch.zeros(1000, 2), seed=0)
    assert torch.bincount(asked).tolist() == [550, 100, 5, 345] and torch.equal(images[:, 0, 0, 0].long(), asked)
    G.pseudo_classes = True  # balanced k-means clusters: each in turn, scored as one set
    assert ev.samples(G(), torch.zeros(1000, 2), seed=0)[1] is None


def test_the_floor_reads_classes_from_held_out_images_not_the_ones_the_classifier_learnt(tmp_path):
    root = upright_images(tmp_path / "set", n=60, size=8)
    for i, f in enumerate(sorted(root.glob("*.png"))):  # labels unrelated to the pictures: only memorised
        (root / "ab"[i % 2]).mkdir(exist_ok=True)
        f.rename(root / "ab"[i % 2] / f.name)
    images = data.ImageFolder(str(root), image_size=8, workers=0)
    ev = Evaluator(images, n_images=48)
    rest = images.make_split("train")
    learnt, floor = ev.score(rest.images.float().div(127.5).sub(1), rest.labels)
    suite = ev.suite
    with torch.no_grad():
        pred = suite.net.classify(suite.ref.features).argmax(1)
    held = [float((pred[suite.ref.labels == c] == c).double().mean()) for c in (0, 1)]
    assert floor["hit_rate"] == pytest.approx(sum(held) / 2)  # what images it never saw read as
    assert learnt["hit_rate"] > floor["hit_rate"]  # the training images read better: not the floor
    assert floor["fd"] == pytest.approx(learnt["fd"], rel=1e-5)  # the distances still compare training images with the reference
    assert "hit_rate" in ev.settings["real"] and "12 held-out images" in ev.settings["real"]
    assert ev.per_class["class_names"] == ["a", "b"] and len(ev.per_class["hit_rate"]) == 2  # which entry is which


def test_the_feature_network_is_the_same_whatever_threads_the_run_has():
    from ganrun.metrics import classifier

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (256, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 4, (256,), generator=g)
    before = torch.get_num_threads()
    digests = []
    try:
        for threads in (1, 2):  # two threads split the sums differently: trained in them, the weights drift apart
            torch.set_num_threads(threads)
            digests.append(classifier.weights_digest(classifier.fit_classifier(images, labels, epochs=1)))
            assert torch.get_num_threads() == threads  # the run's own setting comes back
    finally:
        torch.set_num_threads(before)
    assert digests[0] == digests[1]
