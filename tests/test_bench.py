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
