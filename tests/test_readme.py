"""The README, run literally: every command of its bash blocks, in order, from an empty folder with the
default output locations, exactly as written except for fewer `train.steps`; then the resume command
ganrun itself prints after a Ctrl-C, which must continue the same experiment to the same weights."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, SHARED_DATA
from PIL import Image

from ganrun.artifacts import checkpoint

STEPS = 20  # every `ganrun train` of the README, shortened to this many steps (a resume: twice as many)
BIN = Path(sys.executable).parent


def readme_commands() -> list[str]:
    """The commands of the README's ```bash blocks, in order, as written (a comment after two spaces removed)."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def shorten(command: str) -> str:
    """The command with fewer training steps: `train.steps=STEPS` set on every `ganrun train` (2 x STEPS for a
    resume, which must go past the run's own steps; none for a sweep's resume); everything else exactly as written."""
    words = shlex.split(command)
    if words[:2] != ["ganrun", "train"] or any(w in ("--help", "--cfg") for w in words):
        return command
    if "-m" in words and any(w.startswith("resume=") for w in words):
        return command  # finishing a sweep: its own overrides, shortened when it began
    steps = 2 * STEPS if any(w.startswith("resume=") for w in words) else STEPS
    return re.sub(r"\s+train\.steps=\S+", "", command) + f" train.steps={steps}"


def user_files(cwd: Path) -> dict[str, str]:
    """What a user would have beside the commands: their own images (my_images/, emoji.zip), and the environment:
    the Fashion-MNIST files where a real user would download them, W&B in offline mode (no login here)."""
    (cwd / "my_images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(cwd / "my_images" / f"{i}.png")
    with zipfile.ZipFile(cwd / "emoji.zip", "w") as zf:  # and the same images zipped
        for i in range(40):
            zf.write(cwd / "my_images" / f"{i}.png", f"{i}.png")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "PYTHONUNBUFFERED": "1"}
    env["GANRUN_DATA"] = str(SHARED_DATA / "fashion-mnist")
    return env


def newest_run(cwd: Path, sweep: bool = False) -> Path:
    link = cwd / "outputs" / ("multirun/latest" if sweep else "latest")
    assert link.is_symlink(), link
    return link.resolve()


def check(command: str, r: subprocess.CompletedProcess, cwd: Path) -> None:
    """What each kind of README command must leave behind."""
    assert r.returncode == 0 and "Traceback" not in r.stderr, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    words = shlex.split(command)
    if words[:2] == ["ganrun", "train"] and "--help" not in words and "--cfg" not in words:
        if "-m" in words:
            sweep = newest_run(cwd, sweep=True)
            jobs = sorted(p for p in sweep.iterdir() if (p / "summary.json").is_file())
            assert jobs and all(json.loads((j / "summary.json").read_text())["status"] == "completed" for j in jobs)
            assert f"{len(jobs)} runs" in r.stdout  # the sweep's table
            if "train.seed=range(" in command:  # and each setting over its seeds
                assert "over seeds: mean ± 95% interval" in r.stdout
        else:
            run = newest_run(cwd)
            summary = json.loads((run / "summary.json").read_text())
            assert summary["status"] == "completed" and (run / "checkpoints" / "last.pt").is_file()
            assert summary["step"] == checkpoint.load(run)["step"]
    out = next((w.split("=", 1)[1] for w in words if w.startswith("out=")), "")
    if words[:2] == ["ganrun", "sample"]:
        if out.endswith("/"):
            seeds = re.search(r"seeds=(\d+)-(\d+)", command)
            assert len(list((cwd / out).iterdir())) == int(seeds[2]) - int(seeds[1]) + 1
        else:
            assert (cwd / out).is_file()
    if words[:2] == ["ganrun", "eval"]:
        assert list((newest_run(cwd) / "eval").glob("*.json")) and "fd" in r.stdout
    if words[:2] == ["ganrun", "report"]:
        assert "## Over seeds" in (newest_run(cwd, sweep=True) / "report.md").read_text()
    if words[:2] == ["ganrun", "export"]:
        assert (newest_run(cwd) / "generator.safetensors").is_file()


@pytest.mark.slow  # every README command: a few minutes
def test_every_readme_command_runs_as_written(tmp_path):
    env = user_files(tmp_path)
    commands = readme_commands()
    assert any(c.startswith("ganrun train -m") for c in commands) and "ganrun train" in commands
    ran = []
    for command in commands:
        if "fashion-mnist" in command and not (SHARED_DATA / "fashion-mnist").is_dir():
            continue  # no copy of the files here, and no network to download them
        if command.startswith("make "):  # what make would run (in the repo's own folder), run here from the venv
            dry = subprocess.run(["make", "-n", "-C", str(ROOT), *shlex.split(command)[1:]], capture_output=True,
                                 text=True)
            assert dry.returncode == 0, dry.stderr
            shown = [line for line in dry.stdout.splitlines() if line.startswith(".venv/bin/ganrun train")]
            if not shown:  # make test: the suite itself, checked by its dry run alone
                assert "pytest" in dry.stdout
                continue
            command = shown[-1].removeprefix(".venv/bin/").strip()
            assert "=" not in command or "loss=hinge model.spectral_norm=true" in command
        if command.startswith("eval "):  # the completion script installs in a bash
            r = subprocess.run(["bash", "-c", f"{command} && complete -p ganrun"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0 and "_ganrun_complete" in r.stdout, r.stderr
            continue
        r = subprocess.run(["bash", "-c", shorten(command)], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=900)
        check(command, r, tmp_path)
        ran.append(command)
        if command == "ganrun train":
            default_run, record = newest_run(tmp_path), (newest_run(tmp_path) / ".hydra" / "overrides.yaml").read_text()
        if command.startswith("ganrun train resume="):  # continues the default run in its own folder
            ckpt = checkpoint.load(default_run)
            assert newest_run(tmp_path) == default_run and ckpt["step"] == 2 * STEPS
            assert ckpt["config"]["dataset"]["_target_"].endswith("mnist_sample") and ckpt["config"]["train"]["ema"] == 0.999
            assert (default_run / ".hydra" / "overrides.yaml").read_text() == record
    assert len(ran) >= 15 and "ganrun train" in ran


def _wait_for_step(run_parent: Path, proc: subprocess.Popen, text: str, timeout: float = 300) -> None:
    end = time.time() + timeout
    while not any(text in p.read_text() for p in run_parent.glob("outputs/*/*/train.log")):
        assert proc.poll() is None and time.time() < end, proc.communicate()
        time.sleep(0.2)


@pytest.mark.slow  # two default runs of 150 steps
def test_the_printed_resume_command_continues_the_default_run_to_the_same_weights(tmp_path):
    env = user_files(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    steps = ["train.steps=150", "train.log_every=10"]
    proc = subprocess.Popen(["ganrun", "train", *steps], cwd=tmp_path / "a", env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_step(tmp_path / "a", proc, "step 30/150")
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    hint = err.strip().splitlines()[-1]
    assert "continue with: ganrun train resume=" in hint
    command = hint.split("continue with: ", 1)[1]
    r = subprocess.run(["bash", "-c", command], cwd=tmp_path / "a", env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    straight = subprocess.run(["ganrun", "train", *steps], cwd=tmp_path / "b", env=env, capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr
    resumed, plain = (checkpoint.load(tmp_path / x / "outputs" / "latest") for x in ("a", "b"))
    assert resumed["step"] == plain["step"] == 150 and 0 < int(err.split("after step ")[1].split(";")[0]) < 150
    for part in ("G", "D", "G_ema"):
        for k in plain[part]:
            assert torch.equal(resumed[part][k], plain[part][k]), (part, k)
    assert {**resumed["config"], "resume": ""} == plain["config"]  # the same experiment; only resume= is new


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_docs_reaches_its_file_and_heading():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    anchors = {p.resolve(): {heading_anchor(h) for h in re.findall(r"^#+ (.*)$", p.read_text(), flags=re.M)}
               for p in pages}
    broken = []
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (page.parent / target).resolve() if target else page.resolve()
            if not path.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and path in anchors and anchor not in anchors[path]:
                broken.append(f"{page.name}: {target}#{anchor} (no such heading)")
    assert not broken, "\n".join(broken)
