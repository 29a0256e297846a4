"""Resumable sweeps (`ganrun train -m resume=SWEEP`), as a user meets them: a sweep stopped halfway by
SIGTERM, then finished with the command ganrun printed; bad resume folders refused in one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli

RING = ["dataset=ring", "model=mlp", "model.hidden=[16,16]", "model.latent_dim=8", "train.steps=300",
        "train.ckpt_every=50", "train.log_every=50", "train.eval_n=200", "train.progress=false"]
SWEEP = ["loss=gan,hinge", "train.seed=range(2)"]  # 4 jobs: gan 0, gan 1, hinge 0, hinge 1


def weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    return {**{f"G.{k}": v for k, v in ckpt["G"].items()}, **{f"D.{k}": v for k, v in ckpt["D"].items()}}


@pytest.mark.slow  # a 4-job sweep, stopped and finished, and one run alone: about a minute
def test_a_sweep_stopped_by_sigterm_finishes_with_the_printed_command(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ganrun", "train", "-m", *SWEEP, *RING], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    sweep = tmp_path / "outputs" / "multirun" / "latest"
    deadline = time.time() + 300
    while not (sweep / "2" / "checkpoints" / "last.pt").is_file():  # job 2 has saved: stop halfway through it
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    hint = re.search(r"continue with: (ganrun train -m resume=\S+)", err)
    assert hint, err
    done_before = {j: (sweep / j / "summary.json").read_text() for j in ("0", "1")}
    assert all(json.loads(s)["status"] == "completed" for s in done_before.values())
    assert json.loads((sweep / "2" / "summary.json").read_text())["status"] == "interrupted"
    assert not (sweep / "3").exists()
    record = (sweep / "2" / ".hydra" / "overrides.yaml").read_text()

    r = run_cli("train", *hint[1].split()[2:], cwd=tmp_path, timeout=600)  # the printed command, as printed
    assert r.returncode == 0, r.stderr
    for j in ("0", "1"):  # completed runs are not run again
        assert (sweep / j / "summary.json").read_text() == done_before[j]
    summaries = {j: json.loads((sweep / j / "summary.json").read_text()) for j in "0123"}
    assert all(s["status"] == "completed" and s["step"] == 300 for s in summaries.values())
    assert (sweep / "2" / ".hydra" / "overrides.yaml").read_text() == record  # the job's own record kept
    assert "loss=hinge" in (sweep / "3" / ".hydra" / "overrides.yaml").read_text()  # a fresh job gets its record
    table = r.stdout[r.stdout.index("4 runs"):]
    assert table.count("completed") == 4 and "over seeds" in table

    alone = tmp_path / "alone"  # job 2 uninterrupted: the resumed run ends with the same weights
    assert run_cli("train", "loss=hinge", "train.seed=0", *RING, f"hydra.run.dir={alone}",
                   cwd=tmp_path).returncode == 0
    mine, theirs = weights(sweep / "2"), weights(alone)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_resume_of_a_folder_that_is_no_sweep_or_another_sweep_is_one_line(tmp_path):
    r = run_cli("train", "-m", *SWEEP, *RING, f"resume={tmp_path}", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert f"resume={tmp_path}: not a sweep folder (no multirun.yaml)" in r.stderr
    sweep = tmp_path / "s"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(  # what Hydra records for `ganrun train -m loss=gan,wgan`
        "hydra:\n  sweeper:\n    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "  overrides:\n    hydra: []\n    task: [\"loss=gan,wgan\"]\n")
    r = run_cli("train", "-m", *SWEEP, f"resume={sweep}", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert f"resume={sweep}: that sweep ran `loss=gan,wgan`, not `loss=gan,hinge train.seed=range(2)`" in r.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml"]  # nothing started, nothing lost


def test_a_sweep_resumed_from_another_folder_reads_its_own_relative_data(tmp_path):
    import shutil
    import zipfile

    import numpy as np
    from PIL import Image

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    with zipfile.ZipFile(project / "pics.zip", "w") as zf:
        for i in range(12):
            Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(tmp_path / "x.png")
            zf.write(tmp_path / "x.png", f"{i}.png")
    small = ["dataset=zip", "dataset.path=pics.zip", "dataset.image_size=8", "dataset.workers=0", "model=mlp",
             "model.hidden=[16,16]", "model.latent_dim=8", "train.steps=4", "train.batch_size=4",
             "train.eval_n=200", "train.progress=false"]
    r = run_cli("train", "-m", "loss=gan,hinge", *small, cwd=project)
    assert r.returncode == 0, r.stderr
    sweep = (project / "outputs" / "multirun" / "latest").resolve()
    shutil.rmtree(sweep / "1")  # job 1 never started (a lost machine)
    r = run_cli("train", "-m", f"resume={sweep}", cwd=elsewhere)  # typed in another folder
    assert r.returncode == 0, r.stderr
    ckpt = torch.load(sweep / "1" / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["step"] == 4 and ckpt["config"]["dataset"]["path"] == str(project / "pics.zip")
    assert f"dataset.path=pics.zip is read from {project}" in r.stderr + r.stdout
    assert len(re.findall(r"^\d\s+loss=\w+\s+completed", r.stdout, re.M)) == 2  # the table: both runs
    assert not (elsewhere / "outputs").exists()
