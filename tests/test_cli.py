"""Every CLI path end to end in a subprocess, as a user types it: train, sample, sweeps, errors."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY, TINY_MODEL, run_cli
from PIL import Image

TINY_DCGAN = [*TINY, *TINY_MODEL["dcgan"], "model.conditional=false", "train.clusters=0"]  # a plain, unconditional DCGAN


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    """One tiny DCGAN run through the console script; several tests read its outputs."""
    base = tmp_path_factory.mktemp("run")
    run_dir = base / "r"
    # the installed console script, run from a folder outside the repo
    r = run_cli("train", *TINY_DCGAN, "hydra.run.dir=r", module=False, cwd=base)
    assert r.returncode == 0, r.stderr
    return run_dir


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("toy") / "r"
    r = run_cli("train", "dataset=ring", "model=mlp", *TINY, *TINY_MODEL["mlp"], f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr
    return run_dir


def test_train_writes_a_complete_run_folder(image_run):
    assert (image_run / ".hydra" / "config.yaml").is_file() and (image_run / ".hydra" / "overrides.yaml").is_file()
    assert list(image_run.glob("events.out.tfevents.*"))
    assert (image_run / "samples" / "step_000004.png").is_file()
    assert (image_run / "checkpoints" / "last.pt").is_file()
    summary = json.loads((image_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == 4
    assert set(summary["losses"]) == {"loss/D", "loss/G", "loss/penalty"} and summary["wall_time_s"] > 0
    assert "train.steps=4" in summary["overrides"]
    ckpt = torch.load(image_run / "checkpoints" / "last.pt", weights_only=True)
    assert {"G", "D", "opt_G", "opt_D", "step", "rng", "config"} <= set(ckpt)


def test_sample_png_and_npy(image_run, tmp_path):
    ckpt = image_run / "checkpoints" / "last.pt"
    r = run_cli("sample", f"ckpt={ckpt}", "n=6", f"out={tmp_path / 'grid.png'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "grid.png").size == (3 * 30 + 2, 2 * 30 + 2)  # 3 x 2 grid of 28 px + padding
    r = run_cli("sample", f"ckpt={ckpt}", "n=5", "out=s.npy", "seed=3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (5, 1, 28, 28) and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1
    assert arr.std() > 0
    # seed fixes z; a run folder stands for its last checkpoint
    assert run_cli("sample", f"ckpt={image_run}", "n=5", "out=t.npy", "seed=3", cwd=tmp_path).returncode == 0
    np.testing.assert_array_equal(arr, np.load(tmp_path / "t.npy"))
    assert run_cli("sample", f"ckpt={ckpt}", "n=5", "out=u.npy", "seed=4", cwd=tmp_path).returncode == 0
    assert not np.array_equal(arr, np.load(tmp_path / "u.npy"))


def test_sample_needs_only_the_checkpoint(image_run, tmp_path):
    lone = tmp_path / "lone.pt"
    shutil.copy(image_run / "checkpoints" / "last.pt", lone)
    r = run_cli("sample", f"ckpt={lone}", "n=4", "out=x.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_sample_toy_points(toy_run, tmp_path):
    r = run_cli("sample", f"ckpt={toy_run}", "n=100", "out=p.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pts = np.load(tmp_path / "p.npy")
    assert pts.shape == (100, 2) and pts.dtype == np.float32
    assert run_cli("sample", f"ckpt={toy_run}", "n=100", "out=p.png", cwd=tmp_path).returncode == 0
    assert Image.open(tmp_path / "p.png").mode == "RGB"


@pytest.mark.slow  # 10-20 s: runs in `make test-all`, kept out of make test's 10 minutes
def test_multirun_sweep_prints_a_table(tmp_path):
    r = run_cli("train", "-m", "model=mlp,dcgan", "loss=gan,wgan-gp", "dataset=ring", *TINY,
                "model.latent_dim=8",
                f"hydra.sweep.dir={tmp_path}", timeout=600)
    assert r.returncode == 0, r.stderr
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert runs == ["0", "1", "2", "3"]
    for run in runs:
        assert json.loads((tmp_path / run / "summary.json").read_text())["status"] == "completed"
    table = r.stdout[r.stdout.index("4 runs"):]
    assert "loss/D" in table and "loss/G" in table
    for combo in ("model=mlp loss=gan", "model=mlp loss=wgan-gp", "model=dcgan loss=gan", "model=dcgan loss=wgan-gp"):
        assert combo in table
    assert table.count("completed") == 4


def test_python_m_and_help():
    r = run_cli("--help")
    assert r.returncode == 0 and "ganrun train" in r.stdout
    r = run_cli("train", "--cfg", "job", "loss=wgan-gp")
    assert r.returncode == 0 and "losses.Wasserstein" in r.stdout and "n_critic: 5" in r.stdout
    assert "regularizers.GradientPenalty" in r.stdout  # the recipe's regularizer


def test_user_config_dir(tmp_path):
    (tmp_path / "conf" / "loss").mkdir(parents=True)
    (tmp_path / "conf" / "loss" / "mine.yaml").write_text(
        "# @package _global_\nloss:\n  _target_: ganrun.training.losses.Hinge\ntrain:\n  n_critic: 3\n")
    r = run_cli("train", "--config-dir", str(tmp_path / "conf"), "loss=mine", "--cfg", "job")
    assert r.returncode == 0, r.stderr
    assert "ganrun.training.losses.Hinge" in r.stdout and "n_critic: 3" in r.stdout


def test_installed_package_finds_configs_from_any_directory(tmp_path):
    # a normal (non-editable) install, run from a folder far from the repo
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (target / "ganrun" / "configs" / "train.yaml").is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    code = "import ganrun, sys; sys.argv = ['ganrun', 'train', *sys.argv[1:]]; print(ganrun.__file__); " \
           "from ganrun.commands.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code, *TINY_DCGAN, "hydra.run.dir=out"], cwd=work,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(target))
    assert (work / "out" / "checkpoints" / "last.pt").is_file()


# ---------------------------------------------------------------- bad input: one line, exit 2


@pytest.mark.parametrize("args, message", [
    (["frobnicate"], "unknown command 'frobnicate'; use one of: train, sample, eval, export, report"),
    (["sample"], "ckpt=PATH is required"),
    (["sample", "ckpt=/nonexistent/x.pt"], "ckpt=/nonexistent/x.pt: no such file"),
    (["sample", "ckpt=x.pt", "out=grid.jpg"], "out=grid.jpg: unsupported suffix; use .png, .npy, .gif or a folder (DIR/)"),
    (["sample", "ckpt=x.pt", "n=0"], "n=0: must be >= 1"),
    (["sample", "ckpt=x.pt", "colour=red"], "colour"),
    (["train", "train.steps=0"], "train.steps=0: must be >= 1"),
    (["train", "dataset=folder"], "dataset.root is required"),
    (["train", "+loss.margin=2"], "loss.margin: unknown key for ganrun.training.losses.NonSaturating"),
    (["train", "dataset=mnist", "dataset.root=/nonexistent", "dataset.download=false"], "no MNIST train files"),
    (["train", "loss=nope"], "loss=nope: no such option (loss options: gan, hinge, lsgan, minimax"),
    (["train", "train.steps=abc"], "train.steps=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    (["train", "train.stepz=3"], "train.stepz: unknown key; did you mean train.steps? (train keys: ada_kimg"),
    (["train", "train.device=gpu"], "expected one of [auto, cpu, cuda]"),
    (["train", "train.device=cuda"] if not __import__("torch").cuda.is_available() else ["train", "train.steps=-1"],
     "train.device=cuda but torch sees no CUDA GPU" if not __import__("torch").cuda.is_available() else "must be >= 1"),
    (["train", "resume=/nonexistent/run"], "no such file"),
    (["train", "train.on_nan=ignore"], "train.on_nan='ignore': use stop or skip"),
    (["eval"], "give ckpt=RUN (a run folder or checkpoint) or samples=PATH dataset=NAME"),
    (["eval", "samples=x.npy"], "samples=PATH needs dataset=NAME"),
    (["eval", "samples=/nonexistent.npy", "dataset=mnist-sample"], "samples=/nonexistent.npy: give an .npy file"),
    (["eval", "samples=x.npy", "dataset=nope"], "dataset=nope: no such option (dataset options: cifar10,"),
    (["eval", "ckpt=x.pt", "dataset.root=/tmp"], "dataset.root=/tmp: dataset keys go with samples=PATH"),
])
def test_bad_input_gets_one_line_and_exit_2(args, message, tmp_path):
    r = run_cli(*args, f"hydra.run.dir={tmp_path / 'r'}" if args[0] == "train" else "seed=0", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_corrupt_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    r = run_cli("sample", f"ckpt={bad}", cwd=tmp_path)
    assert r.returncode == 2 and "is not a ganrun checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_eval_on_images_and_points(image_run, toy_run, tmp_path):
    r = run_cli("eval", f"ckpt={image_run}", "n=300")
    assert r.returncode == 0, r.stderr
    report = json.loads((image_run / "eval" / "step_000004.json").read_text())
    assert {"classes", "class_kl", "confidence", "confident", "fd", "kid", "precision", "recall", "density",
            "coverage", "class_diversity"} == set(report["metrics"]) == set(report["real"])
    assert report["settings"]["samples"] == 300 and len(report["settings"]["weights_sha256"]) == 64
    assert report["settings"]["feature_net_test_accuracy"] >= 0.99 and len(report["per_class"]["share"]) == 10
    assert "fd" in r.stdout and "x real" in r.stdout and "wrote" in r.stdout
    r = run_cli("eval", f"ckpt={toy_run}", f"out={tmp_path / 'toy.json'}")
    assert r.returncode == 0, r.stderr
    toy = json.loads((tmp_path / "toy.json").read_text())
    assert set(toy["metrics"]) == {"modes", "hq_percent", "reverse_kl", "energy"} and toy["settings"]["samples"] == 2500


def test_training_summary_carries_metrics_beside_the_real_floor(image_run):
    summary = json.loads((image_run / "summary.json").read_text())
    assert summary["metrics"]["classes"] >= 1 and summary["metric_settings"]["samples"] == 200
    assert set(summary["metrics_real"]) == set(summary["metrics"]) and summary["metrics_real"]["fd"] < 30
    assert len(summary["per_class"]["diversity"]) == 10


def test_report_shows_each_fd_as_a_multiple_of_real_data(image_run, tmp_path):
    r = run_cli("report", str(image_run), f"out={tmp_path / 'rep'}")
    assert r.returncode == 0, r.stderr
    summary = json.loads((image_run / "summary.json").read_text())
    ratio = summary["metrics"]["fd"] / summary["metrics_real"]["fd"]
    assert f"({ratio:.1f}x real)" in (tmp_path / "rep.md").read_text()


def real_digits(n: int) -> np.ndarray:
    """n real digits of the offline sample as `ganrun sample out=*.npy` writes images: (n, 1, 28, 28) in [0, 1]."""
    from ganrun import data

    images = data.mnist_sample().images  # stored class by class: take a random subset
    return (images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:n]].float() / 255).numpy()


def test_eval_scores_an_npy_and_a_folder_of_pngs_alike(tmp_path):
    x = real_digits(300)
    np.save(tmp_path / "real.npy", x)
    r = run_cli("eval", "samples=real.npy", "dataset=mnist-sample", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "real.eval.json").read_text())  # the default out: beside the samples
    assert report["n"] == 300 and report["metrics"]["classes"] == 10
    assert report["metrics"]["precision"] > 0.7 and report["metrics"]["fd"] < 3 * report["real"]["fd"]
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, img in enumerate(x):
        Image.fromarray((img[0] * 255).round().astype(np.uint8)).save(folder / f"{i:04d}.png")
    r = run_cli("eval", f"samples={folder}", "dataset=mnist-sample", f"out={tmp_path / 'f.json'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from_pngs = json.loads((tmp_path / "f.json").read_text())
    for key in ("fd", "precision", "recall", "density", "coverage"):
        assert from_pngs["metrics"][key] == pytest.approx(report["metrics"][key], rel=1e-4), key


@pytest.mark.parametrize("array, message", [
    (np.zeros((10, 3, 28, 28), np.float32), "images of shape (3, 28, 28), the dataset's are (1, 28, 28)"),
    (np.full((10, 1, 28, 28), -1.0, np.float32), "values from -1 to -1; images must be in [0, 1]"),
    (np.zeros((10, 1, 32, 32), np.float32), "32 px images, the dataset's are 28 px; add dataset.image_size=32"),
])
def test_eval_refuses_samples_that_do_not_fit_the_dataset(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    r = run_cli("eval", "samples=bad.npy", "dataset=mnist-sample", cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad.eval.json").exists()


def test_conditional_samples_carry_their_labels_to_eval(tmp_path):
    run_dir = tmp_path / "c"
    r = run_cli("train", *TINY_DCGAN, "model.conditional=true", f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr
    r = run_cli("sample", f"ckpt={run_dir}", "n=200", "out=s.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "s.labels.npy").tolist() == [c for c in range(10) for _ in range(20)]
    r = run_cli("eval", "samples=s.npy", "dataset=mnist-sample", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "s.eval.json").read_text())
    assert {"hit_rate", "intra_fd", "class_diversity"} <= set(report["metrics"])
    assert report["real"]["hit_rate"] > 0.9 and len(report["per_class"]["hit_rate"]) == 10
    summary = json.loads((run_dir / "summary.json").read_text())  # the run's own evaluation: per class too
    assert "hit_rate" in summary["metrics"] and "hit_rate" in summary["metrics_real"]


def test_a_failing_run_does_not_stop_the_sweep(tmp_path):
    # the second run asks for labels the ring does not have: it fails when its data is built, the first runs
    r = run_cli("train", "-m", "model.conditional=false,true", "dataset=ring", "model=mlp", *TINY,
                *TINY_MODEL["mlp"], f"hydra.sweep.dir={tmp_path}", timeout=600)
    assert r.returncode == 1
    assert json.loads((tmp_path / "0" / "summary.json").read_text())["status"] == "completed"
    failed = json.loads((tmp_path / "1" / "summary.json").read_text())
    assert failed["status"] == "failed" and "model.conditional=true needs a labelled" in failed["error"]
    table = r.stdout[r.stdout.index("2 runs"):]
    assert "completed" in table and "failed" in table
    assert "1 of 2 runs did not complete: 1" in r.stderr


def test_resume_args_compose_the_runs_own_overrides_in_its_folder(tmp_path):
    from ganrun.commands.cli import resume_args

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    from ganrun.artifacts import checkpoint

    # a checkpoint from before they were kept in it: its folder's record gives the overrides
    torch.save({"format": checkpoint.FORMAT}, run / "checkpoints" / "last.pt")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- dataset=ring\n- train.steps=8\n")
    torch.save({"format": checkpoint.FORMAT}, tmp_path / "loose.pt")
    args = resume_args([f"resume={run}", "train.steps=12"])
    assert args[:3] == ["dataset=ring", "train.steps=12", f"resume={run}"]  # the change replaces the run's own
    assert args[3] == f"hydra.run.dir={run}" and args[4].startswith("hydra.output_subdir=.hydra/resume-")
    args = resume_args([f"resume={run / 'checkpoints' / 'last.pt'}"])
    assert f"hydra.run.dir={run}" in args and "dataset=ring" in args
    assert resume_args([f"resume={tmp_path / 'loose.pt'}"]) == [f"resume={tmp_path / 'loose.pt'}"]  # a new folder
    for unreadable in (tmp_path / "missing", tmp_path / "empty.pt"):  # refused before Hydra writes anything
        (tmp_path / "empty.pt").write_bytes(b"")
        with pytest.raises(SystemExit) as stop:
            resume_args([f"resume={unreadable}"])
        assert stop.value.code == 2
    assert "hydra.run.dir=elsewhere" in resume_args([f"resume={run}", "hydra.run.dir=elsewhere"])
    assert not any(a.startswith("hydra.output_subdir") for a in resume_args([f"resume={run}", "hydra.run.dir=x"]))
    assert resume_args(["train.steps=3"]) == ["train.steps=3"]


def test_checkpoint_of_another_architecture_names_the_tensor(image_run, tmp_path):
    ckpt = torch.load(image_run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["config"]["model"]["width"] = 8  # the weights were trained at width 4
    torch.save(ckpt, tmp_path / "other.pt")
    r = run_cli("sample", f"ckpt={tmp_path / 'other.pt'}", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "net.0.weight has shape [8, 8, 7, 7] in the checkpoint but [8, 16, 7, 7] in the model" in r.stderr


def test_unwritable_run_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run_cli("train", f"hydra.run.dir={blocker / 'run'}", cwd=tmp_path)
    assert r.returncode == 2 and "cannot write the run folder" in r.stderr and "Traceback" not in r.stderr


def test_empty_image_folder(tmp_path):
    (tmp_path / "imgs").mkdir()
    r = run_cli("train", "dataset=folder", f"dataset.root={tmp_path / 'imgs'}", f"hydra.run.dir={tmp_path / 'r'}")
    assert r.returncode == 2 and "holds no readable images" in r.stderr and "Traceback" not in r.stderr


def test_config_cannot_name_arbitrary_code(tmp_path):
    marker = tmp_path / "pwned"
    r = run_cli("train", "dataset._target_=os.system", f"+dataset.command='touch {marker}'",
                f"hydra.run.dir={tmp_path / 'r'}")
    assert r.returncode == 2 and "is not allowed" in r.stderr
    assert not marker.exists()


def test_eval_says_what_inception_needs_and_still_reports(image_run, tmp_path, monkeypatch):
    # without torchmetrics (as here), one line names the missing piece; the other metrics still come
    env_block = tmp_path / "block"
    env_block.mkdir()
    (env_block / "torchmetrics.py").write_text("raise ImportError('blocked for this test')\n")
    monkeypatch.setenv("PYTHONPATH", str(env_block))
    r = run_cli("eval", f"ckpt={image_run}", "n=200", "inception=true", f"out={tmp_path / 'e.json'}")
    assert r.returncode == 0, r.stderr
    assert "inception skipped: Inception FID/KID need torchmetrics and torch-fidelity" in r.stderr
    assert "fd" in json.loads((tmp_path / "e.json").read_text())["metrics"]


@pytest.mark.slow  # 12 s: a plugin launcher; the plain sweep is tested in make test
def test_parallel_launcher_sweep_runs_every_job(tmp_path):
    r = run_cli("train", "-m", "hydra/launcher=parallel", "loss=gan,hinge", "dataset=ring", "model=mlp",
                *TINY, *TINY_MODEL["mlp"], f"hydra.sweep.dir={tmp_path}", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for run in ("0", "1"):
        assert json.loads((tmp_path / run / "summary.json").read_text())["status"] == "completed"
    table = r.stdout[r.stdout.index("2 runs"):]
    assert "loss=gan" in table and "loss=hinge" in table and table.count("completed") == 2


@pytest.mark.parametrize("launcher, target", [
    ("parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher")])
def test_launcher_configs_compose(launcher, target):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="ganrun.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min == 240
    else:
        assert cfg.hydra.launcher.n_jobs == 2


def test_conditional_train_and_sample_classes(tmp_path, image_run):
    run_dir = tmp_path / "cond"
    r = run_cli("train", "model.conditional=true", *TINY, *TINY_MODEL["dcgan"], "train.n_samples=20",
                f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # the training grid: 10 classes, one per row, 2 per row
    assert Image.open(run_dir / "samples" / "step_000004.png").size == (2 * 30 + 2, 10 * 30 + 2)
    r = run_cli("sample", f"ckpt={run_dir}", "n=6", "classes=[3,7]", "out=c.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    arr = np.load(tmp_path / "c.npy")
    assert arr.shape == (6, 1, 28, 28)
    assert not np.allclose(arr[:3], arr[3:])  # rows of class 3 and class 7
    r = run_cli("sample", f"ckpt={run_dir}", "classes=[12]", cwd=tmp_path)
    assert r.returncode == 2 and "classes=[12]: give class numbers from 0 to 9" in r.stderr
    r = run_cli("sample", f"ckpt={image_run}", "classes=[1]", cwd=tmp_path)
    assert r.returncode == 2 and "not conditional" in r.stderr


def test_conditional_on_an_unlabelled_set_is_one_line(tmp_path):
    r = run_cli("train", "model.conditional=true", "dataset=ring", *TINY, f"hydra.run.dir={tmp_path / 'r'}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("ganrun train: error: model.conditional=true needs a labelled")


def test_report_on_a_sweep_tables_csv_plot_and_hparams(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli("train", "-m", "loss=gan,hinge", "dataset=ring", "model=mlp", *TINY, *TINY_MODEL["mlp"],
                f"hydra.sweep.dir={sweep}", timeout=600)
    assert r.returncode == 0, r.stderr
    # a third run that has not finished: no summary.json yet
    shutil.copytree(sweep / "1", sweep / "2")
    (sweep / "2" / "summary.json").unlink()
    r = run_cli("report", str(sweep))
    assert r.returncode == 0, r.stderr
    md = (sweep / "report.md").read_text()
    assert "loss=gan" in md and "loss=hinge" in md and md.count("completed") == 2 and "running" in md
    assert "modes" in md and "hq_percent" in md  # metrics from the summaries
    with (sweep / "report.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["run", "overrides", "status", "step"] and len(rows) == 4
    assert Image.open(sweep / "report.png").size[0] > 100
    # every run wrote TensorBoard HParams: its overrides against its final metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(sweep / "0"))
    acc.Reload()
    assert "hparams/eval/modes" in acc.Tags()["scalars"]
    assert "_hparams_/session_start_info" in acc.Tags().get("tensors", []) + list(acc.summary_metadata)


def test_report_errors_are_one_line(tmp_path):
    r = run_cli("report", str(tmp_path))
    assert r.returncode == 2 and "no ganrun runs under" in r.stderr
    r = run_cli("report")
    assert r.returncode == 2 and "usage: ganrun report DIR" in r.stderr
