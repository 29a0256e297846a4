"""The benchmark scripts run end to end on a few steps (their numbers are measured elsewhere)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow  # 9 s; the throughput bench's test stays in make test
def test_quality_bench_prints_a_drs_row_for_a_drs_recipe():
    r = subprocess.run([sys.executable, "bench/quality.py", "--seeds", "2", "--steps", "3", "--datasets", "ring",
                        "--settings", "gan", "recipe"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("2 seeds, mean ± standard error")[1]
    settings = [re.split(r"\s{2,}", line)[1] for line in table.strip().splitlines()[2:]]
    # experiment=ring has train.drs=true: G's own row and the filtered row; plain gan has no DRS row
    assert settings[:3] == ["gan", "recipe", "recipe + DRS"] and settings[3].startswith("PacGAN paper")


@pytest.mark.slow  # 10-20 s: runs in `make test-all`, kept out of make test's 10 minutes
def test_throughput_bench_times_both_arms():
    r = subprocess.run([sys.executable, "bench/throughput.py", "--quick", "--models", "mlp", "--losses", "gan",
                        "wgan-gp"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith("mlp ")]
    assert [row[:3] for row in rows] == [["mlp", "gan", "b64"], ["mlp", "wgan-gp", "b64"]]
    assert all(float(row[4]) > 0 and float(row[5]) > 0 for row in rows)  # steps/s of both arms


def test_textbook_loop_trains_on_any_image_set_at_its_size(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    r = subprocess.run([sys.executable, "bench/textbook.py", "--data", "dataset=folder",
                        f"dataset.root={tmp_path / 'imgs'}", "dataset.image_size=32", "--steps", "2", "--n", "10",
                        "--width", "8", "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    samples = np.load(tmp_path / "out" / "samples.npy")
    assert samples.shape == (10, 3, 32, 32) and samples.dtype == np.uint8 and samples.std() > 0
    assert '"steps": 2' in (tmp_path / "out" / "run.json").read_text()


def test_class_ceiling_reads_a_labelled_folder_and_refuses_an_unlabelled_one(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, colour in enumerate(((255, 0, 0), (0, 0, 255))):  # two classes anyone can tell apart: red and blue
        (tmp_path / "imgs" / f"c{c}").mkdir(parents=True)
        for i in range(30):
            img = np.clip(np.array(colour) + rng.integers(-30, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "imgs" / f"c{c}" / f"{i}.png")
    data = ["dataset=folder", f"dataset.root={tmp_path / 'imgs'}", "dataset.image_size=16"]
    r = subprocess.run([sys.executable, "bench/class_ceiling.py", "--data", *data, "--epochs", "3", "--threads", "1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rates = [float(x) for x in re.findall(r"balanced hit rate ([0-9.]+)", r.stdout)]
    assert len(rates) == 2 and all(0 <= x <= 1 for x in rates) and max(rates) > 0.9, r.stdout
    r = subprocess.run([sys.executable, "bench/class_ceiling.py", "--data", *data, "dataset.labelled=false"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "needs a labelled image set" in r.stderr


@pytest.mark.slow  # about a minute: the GPU script's every part on the CPU
def test_device_script_runs_every_part_in_smoke_mode(tmp_path):
    r = subprocess.run(["bash", "bench/device.sh", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=1200,
                       env={**__import__("os").environ, "PYTHON": sys.executable, "OUT": str(tmp_path)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = [re.split(r"\s{2,}", line) for line in r.stdout.split("-----")[-1].splitlines()[1:] if line.strip()]
    parts = [row[0] for row in rows]
    assert parts.count("test") >= 9 and all(row[2] == "pass" for row in rows if row[0] == "test")
    assert "throughput" in parts and all("ratio" in row[3] for row in rows if row[0] == "throughput")
    assert parts[-2:] == ["textbook loop", "ganrun run"] and (tmp_path / "device" / "ganrun" / "summary.json").exists()


def folder_of_images(root, n: int = 60, size: int = 28):
    """n random RGB images in root/imgs: a user's own set, as small as it gets."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "imgs").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "imgs" / f"{i}.png")
    return ["dataset=folder", f"dataset.root={root / 'imgs'}", "dataset.image_size=28", "dataset.channels=1"]


@pytest.mark.slow  # two tiny runs, a few seconds of the textbook loop, four evals
def test_versus_bench_times_both_arms_and_scores_them_alike(tmp_path):
    import json

    data = folder_of_images(tmp_path)

    def versus(seed):
        return subprocess.run([sys.executable, "bench/versus.py", "--name", "tiny", "--seeds", seed, "--out",
                               str(tmp_path / "out"), "--data", *data, "--with", "train.steps=4", "model.width=8",
                               "train.eval_n=200"], cwd=ROOT, capture_output=True, text=True, timeout=600)

    r = versus("0")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert len(rows) == 1 and rows[0]["textbook_steps"] > 0 and rows[0]["wall_s"] > 0
    assert rows[0]["ganrun"]["fd"] > 0 and rows[0]["textbook"]["fd"] > 0 and rows[0]["real"]["fd"] > 0
    assert "| textbook |" in r.stdout and "FD ratio textbook / ganrun per seed:" in r.stdout
    r = versus("1")  # another seed later, into the same folder: both in the record and the table
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert [row["seed"] for row in json.loads((tmp_path / "out" / "tiny.json").read_text())] == [0, 1]
    ratios = r.stdout.split("FD ratio textbook / ganrun per seed: ")[1].split(" (mean")[0]
    assert len(ratios.split(", ")) == 2


@pytest.mark.slow  # 3 arms x 1 trial of 3 steps, then the same command again
def test_study_runs_each_arm_reports_budget_curves_and_finishes_where_it_stopped(tmp_path):
    data = folder_of_images(tmp_path, n=100)  # the paper's batch of 64 fits
    args = [sys.executable, "bench/study.py", "--trials", "1", "--steps", "3", "--losses", "ns", "dragan", "vae",
            "--out", str(tmp_path / "study"), "--data", *data, "--with", "model.width=8", "train.eval_n=200"]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert [line.split(":")[1].split()[0] for line in r.stdout.splitlines()[:3]] == ["completed"] * 3
    md = (tmp_path / "study" / "report.md").read_text()
    assert "## Budget: the best fd after k trials, by name" in md
    assert all(f"| {arm} | 1 |" in md for arm in ("ns", "dragan", "vae"))
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("completed (earlier)") == 3
