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
