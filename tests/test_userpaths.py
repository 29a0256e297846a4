"""The paths a new user walks, from an empty folder with the default output locations: a resume typed as
ganrun prints it, sweeps and searches in outputs/multirun, short runs, broken image files, completion,
messages that say what to do, and exactly the samples asked for."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY, TINY_MODEL, run_cli
from PIL import Image

from ganrun.artifacts import checkpoint
from ganrun.commands import cli

RING = ["dataset=ring", "model=mlp", "loss=hinge", *TINY, *TINY_MODEL["mlp"], "train.ckpt_every=4"]


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """`ganrun ARGV` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err


def only_run(outputs: Path) -> Path:
    """The one run folder under outputs/DATE/ (what outputs/latest points at)."""
    runs = [p for p in outputs.glob("*/*") if (p / ".hydra").is_dir() and not p.parent.is_symlink()]
    assert len(runs) == 1, runs
    assert (outputs / "latest").resolve() == runs[0].resolve()
    return runs[0]


# ---------------------------------------------------------------- 1. resume as printed


def test_resume_continues_the_runs_own_experiment_and_keeps_its_record(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with _no_exit():
        cli.main(["train", *RING])
    run = only_run(tmp_path / "outputs")
    record = (run / ".hydra" / "overrides.yaml").read_text()
    # typed as ganrun prints it (resume=RUN), with one change a resumed run may make: more steps
    with _no_exit():
        cli.main(["train", f"resume={run}", "train.steps=8"])
    ckpt = checkpoint.load(run)
    assert ckpt["step"] == 8 and ckpt["config"]["model"]["_target_"].endswith("mlp.make")
    assert ckpt["config"]["loss"]["_target_"].endswith("Hinge") and ckpt["config"]["dataset"]["_target_"].endswith("ring")
    assert (run / ".hydra" / "overrides.yaml").read_text() == record  # the run's own record, untouched
    resumes = list((run / ".hydra").glob("resume-*/overrides.yaml"))
    assert len(resumes) == 1 and "train.steps=8" in resumes[0].read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from"] == 4 and "loss=hinge" in summary["overrides"]
    # the same 8 steps in one go: the same weights
    straight = tmp_path / "straight"
    with _no_exit():
        cli.main(["train", *RING, "train.steps=8", f"hydra.run.dir={straight}"])
    other = checkpoint.load(straight)
    for k in other["G"]:
        assert torch.equal(other["G"][k], ckpt["G"][k]), k


class _no_exit:
    """Hydra's entry point returns normally after a run; a SystemExit here is a failure with its code."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is SystemExit and value.code not in (0, None):
            raise AssertionError(f"exited with {value.code}")
        return kind is SystemExit


@pytest.mark.parametrize("change, key", [("model.hidden=[8,8]", "model.hidden"), ("loss=gan", "loss"),
                                         ("dataset=grid", "dataset"), ("train.batch_size=4", "train.batch_size")])
def test_resume_refuses_what_a_run_cannot_change_in_one_line(tmp_path, capsys, change, key):
    run = tmp_path / "r"
    with _no_exit():
        cli.main(["train", *RING, f"hydra.run.dir={run}"])
    before = sorted(p.name for p in run.rglob("*"))
    code, out, err = run_main(["train", f"resume={run}", change], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"ganrun train: error: {key}: a resumed run keeps its own config") and "train.steps" in err
    assert sorted(p.name for p in run.rglob("*")) == before  # nothing written


def test_a_run_stopped_by_a_signal_continues_with_the_printed_command(tmp_path):
    import signal
    import sys
    import time

    cmd = [sys.executable, "-m", "ganrun", "train", "dataset=ring", "model=mlp", "loss=hinge", "model.hidden=[64,64]",
           "train.steps=1000000", "train.log_every=10", "train.progress=false", "train.ckpt_every=0"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.time() + 120
    while not list(tmp_path.glob("outputs/*/*/train.log")) or "step 10/" not in _read(tmp_path):
        assert proc.poll() is None and time.time() < end, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    hint = err.strip().splitlines()[-1].split("continue with: ", 1)[1]
    run = only_run(tmp_path / "outputs")
    assert hint == f"ganrun train resume={run.resolve()}"
    step = checkpoint.load(run)["step"]
    r = run_cli(*hint.split()[1:], f"train.steps={step + 5}", "train.progress=false", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ckpt = checkpoint.load(run)
    assert ckpt["step"] == step + 5 and ckpt["config"]["model"]["hidden"] == [64, 64]


def test_resume_and_eval_from_another_folder_read_the_runs_own_relative_zip(tmp_path, monkeypatch, capsys):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    _images(project / "imgs", 12)
    _zipped(project / "imgs", project / "pics.zip")
    elsewhere.mkdir()
    (elsewhere / "pics.zip").write_bytes(b"not this one")  # a same-named file here must not be read instead
    monkeypatch.chdir(project)
    with _no_exit():
        cli.main(["train", "dataset=zip", "dataset.path=pics.zip", *SMALL_IMAGES])
    run = only_run(project / "outputs")
    monkeypatch.chdir(elsewhere)
    # the command as printed from the project folder, typed in another one
    with _no_exit():
        cli.main(["train", f"resume={run}", "train.steps=6"])
    ckpt = checkpoint.load(run)
    assert ckpt["step"] == 6 and ckpt["config"]["dataset"]["path"] == str(project / "pics.zip")
    assert f"dataset.path=pics.zip is read from {project}" in (run / "train.log").read_text()
    code, out, err = run_main(["eval", f"ckpt={run}"], capsys)
    assert code in (0, None), err
    # a folder name that is not there, or a Hub name, stays as given
    from omegaconf import OmegaConf

    from ganrun.config import rebase
    cfg = OmegaConf.create({"dataset": {"path": "user/set", "root": "~/data"}})
    assert rebase(cfg, str(project)) == [] and cfg.dataset.path == "user/set" and cfg.dataset.root == "~/data"


def test_a_named_runs_folder_given_as_the_run_says_which_run_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """`name=try` puts the run in outputs/try/DATE_TIME: `ckpt=outputs/try` and `resume=outputs/try` name the run
    to give, and a resume of a folder or file that is no checkpoint leaves no summary or log behind."""
    monkeypatch.chdir(tmp_path)
    with _no_exit():
        cli.main(["train", "name=try", *RING])
    (run,) = [p for p in (tmp_path / "outputs" / "try").iterdir() if p.is_dir()]
    code, _, err = run_main(["sample", "ckpt=outputs/try", "out=x.png"], capsys)
    said = f"ckpt=outputs/try is a folder of 1 run(s), not a run: pass one, e.g. the newest, outputs/try/{run.name}"
    assert code == 2 and err.strip().endswith(said)
    before = sorted(p.name for p in (tmp_path / "outputs" / "try").iterdir())
    for target in ("outputs/try", "outputs/nothere", "outputs/try/latest"):
        code, _, err = run_main(["train", f"resume={target}", "train.steps=8"], capsys)
        assert code == 2 and f"resume={target}" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in (tmp_path / "outputs" / "try").iterdir()) == before  # no summary.json, no train.log
    assert not (tmp_path / "outputs" / "nothere").exists()
    code, _, _ = run_main(["sample", f"ckpt={run}", "out=x.png"], capsys)  # the run named: it samples
    assert code == 0 and (tmp_path / "x.png").is_file()


def _read(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in tmp_path.glob("outputs/*/*/train.log"))


# ---------------------------------------------------------------- 2, 3. sweeps and searches in the default folder


def test_a_sweep_in_the_default_folder_is_one_folder_with_its_table(tmp_path):
    r = run_cli("train", "-m", "loss=gan,hinge", "dataset=ring", "model=mlp", *TINY, *TINY_MODEL["mlp"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sweeps = [p for p in (tmp_path / "outputs" / "multirun").glob("*/*") if p.is_dir() and not p.parent.is_symlink()]
    assert len(sweeps) == 1 and sorted(p.name for p in sweeps[0].iterdir() if p.is_dir()) == ["0", "1"]
    assert (tmp_path / "outputs" / "multirun" / "latest").resolve() == sweeps[0].resolve()
    table = r.stdout[r.stdout.index("2 runs"):]
    assert "loss=gan" in table and "loss=hinge" in table and table.count("completed") == 2
    report = run_cli("report", "outputs/multirun/latest", cwd=tmp_path)
    assert report.returncode == 0 and "2 runs" in (sweeps[0] / "report.md").read_text()


def test_the_search_objective_is_finite_for_a_run_that_trained(tmp_path):
    from conftest import compose_train
    from omegaconf import OmegaConf

    from ganrun.commands.train import objective
    from ganrun.training.run import run

    summary = run(compose_train(*RING), tmp_path / "r")  # 4 steps: no sample near a mode yet
    assert summary["metrics"]["reverse_kl"] == float("inf") and summary["metrics"]["modes"] == 0
    value = objective(OmegaConf.create({"objective": "auto"}), summary)
    assert 0 < value < float("inf") and value == summary["metrics"]["energy"]


def test_energy_distance_by_hand():
    from ganrun.metrics.scores import energy_distance

    a, b = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]])
    # 2 * mean |a - b| (2, 3, 1, 2 -> 2) - mean |a - a'| (1) - mean |b - b'| (1)
    assert energy_distance(a, b) == pytest.approx(2.0)
    assert energy_distance(a, a) == pytest.approx(-1.0)  # distinct pairs only: a set against itself is not 0
    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    y = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
    assert abs(energy_distance(x, y)) < 0.01 < energy_distance(x, y + 0.5)


# ---------------------------------------------------------------- 4. the EMA warms up


def test_ema_decay_warms_up_by_hand():
    from ganrun.training.callbacks import ema_decay

    assert ema_decay(0.999, 0.05, 20) == pytest.approx(0.5)  # half-life 0.05 * 20 = 1 step
    assert ema_decay(0.999, 0.05, 100) == pytest.approx(0.5 ** (1 / 5))
    assert ema_decay(0.999, 0.05, 100_000) == pytest.approx(0.999)  # the target's half-life (693 steps) caps it
    assert ema_decay(0.999, 0.0, 5) == 0.999  # no warm-up


def test_a_short_runs_ema_generator_shows_what_g_learned(tmp_path):
    from conftest import compose_train

    from ganrun.training.run import run

    overrides = [*TINY, *TINY_MODEL["dcgan"], "train.steps=30", "train.ema=0.999", "model.conditional=false", "train.clusters=0"]
    run(compose_train(*overrides), tmp_path / "warm")
    run(compose_train(*overrides, "train.ema_rampup=0"), tmp_path / "cold")
    warm, cold = checkpoint.load(tmp_path / "warm"), checkpoint.load(tmp_path / "cold")
    assert torch.equal(warm["G"]["net.0.weight"], cold["G"]["net.0.weight"])  # G itself trains alike

    def gap(ckpt):  # how far G_ema is from G, over all weights
        return sum(float((ckpt["G_ema"][k] - ckpt["G"][k]).abs().sum()) for k in ckpt["G"]
                   if ckpt["G"][k].is_floating_point())

    assert gap(warm) < 0.2 * gap(cold)  # without the warm-up G_ema is still mostly its random start


# ---------------------------------------------------------------- 5, 6. broken image files, inception on a folder


def _images(folder: Path, n: int = 12) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = np.full((8, 8, 3), 20 * i % 256, dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"img{i:02d}.png")


def _zipped(folder: Path, path: Path) -> None:
    """A ZIP at path of the folder's files, at its top level."""
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, p.name)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


SMALL_IMAGES = ["dataset.image_size=8", "model=mlp", "model.hidden=[16,16]", "model.latent_dim=8", *TINY,
                "train.batch_size=4", "dataset.workers=0"]


def test_a_truncated_png_in_a_folder_is_skipped_and_named(tmp_path, caplog):
    from conftest import compose_train

    from ganrun.training.run import run

    _images(tmp_path / "imgs")
    _truncate(tmp_path / "imgs" / "img03.png")
    summary = run(compose_train("dataset=folder", f"dataset.root={tmp_path / 'imgs'}", *SMALL_IMAGES),
                  tmp_path / "r")
    assert summary["status"] == "completed"
    assert len(summary["skipped_files"]) == 1 and "img03.png" in summary["skipped_files"][0]
    assert "skipped 1 file(s)" in caplog.text and "img03.png" in caplog.text


def test_a_truncated_png_in_a_zip_is_skipped_and_named(tmp_path):
    from ganrun.data import ImageZip

    _images(tmp_path / "imgs", 6)
    _truncate(tmp_path / "imgs" / "img01.png")
    _zipped(tmp_path / "imgs", tmp_path / "a.zip")
    data = ImageZip(str(tmp_path / "a.zip"), image_size=8, workers=0)
    assert len(data) == 5 and len(data.skipped) == 1 and data.skipped[0].startswith("img01.png (")
    batch = next(data.batches(5, torch.device("cpu")))
    assert batch.shape == (5, 3, 8, 8)


def test_eval_with_inception_on_a_folder_run_scores_real_images(tmp_path, monkeypatch, capsys):
    from ganrun.commands import evaluate
    from ganrun.metrics import scores as metrics

    _images(tmp_path / "imgs", n=40)  # 8 held out: the reference
    run = tmp_path / "r"
    with _no_exit():
        cli.main(["train", "dataset=folder", f"dataset.root={tmp_path / 'imgs'}", *SMALL_IMAGES,
                  f"hydra.run.dir={run}"])
    seen = {}

    def stand_in(fake, real, weights=""):  # the Inception network itself needs a download: not here
        seen.update(fake=fake.shape, real=real.shape)
        return {"inception_fid": 1.0}

    monkeypatch.setattr(metrics, "inception_scores", stand_in)
    assert evaluate.main([f"ckpt={run}", "inception=true", "n=10"]) == 0
    assert seen["real"] == (8, 3, 8, 8) and seen["fake"] == (8, 3, 8, 8)  # as many samples as held-out images


# ---------------------------------------------------------------- 7. completion


def completions(line: str, word: str | None = None, capsys=None) -> list[str]:
    from ganrun.commands.completion import answer

    answer(line, word)
    return capsys.readouterr().out.split()


def test_bash_completion_after_key_equals_inserts_the_value_alone(capsys):
    # bash hands the word after the `=` (COMP_WORDBREAKS): candidates must not repeat the `=`
    assert "gan" in completions("ganrun train loss=", "=", capsys) and "=gan" not in completions(
        "ganrun train loss=", "=", capsys)
    assert completions("ganrun train train.steps=", "=", capsys) == ["4500"]
    assert completions("ganrun train model=ml", "ml", capsys) == ["mlp"]
    assert completions("ganrun train loss=", None, capsys)[0] == "loss=gan"  # zsh: the whole word


def test_completion_offers_fixed_choices():
    from ganrun.commands.completion import candidates

    assert candidates("ganrun train train.device=") == ["train.device=auto", "train.device=cpu", "train.device=cuda"]
    assert candidates("ganrun train train.precision=b") == ["train.precision=bf16"]
    assert candidates("ganrun train model.spectral_norm=") == ["model.spectral_norm=false", "model.spectral_norm=true"]
    assert candidates("ganrun export format=") == ["format=onnx", "format=safetensors", "format=torchscript"]
    assert "dataset=mnist-sample" in candidates("ganrun eval dataset=") and "dataset=zip" in candidates("ganrun eval dataset=")
    assert candidates("ganrun sample mode=") == ["mode=interp", "mode=sample"]
    assert candidates("ganrun sample ema=") == ["ema=false", "ema=true"]


def test_completion_in_a_real_bash_session(tmp_path):
    """tmux types `ganrun train loss=` and TAB into an interactive bash: the line must read loss=gan..."""
    import os
    import shutil
    import sys
    import time

    if not shutil.which("tmux"):
        pytest.skip("no tmux")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    session = f"ganrun{os.getpid()}"
    tmux = ["tmux", "-L", session]
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "200", "-y", "20", "bash --norc --noprofile"],
                   env=env, check=True, cwd=tmp_path)
    try:
        subprocess.run([*tmux, "send-keys", "-t", session, 'eval "$(ganrun --completion bash)"', "Enter"], check=True)
        subprocess.run([*tmux, "send-keys", "-t", session, "ganrun train optimizer=rms", "Tab"], check=True)
        end, screen = time.time() + 60, ""
        while "optimizer=rmsprop" not in screen and time.time() < end:
            time.sleep(0.5)
            screen = subprocess.run([*tmux, "capture-pane", "-t", session, "-p"], capture_output=True,
                                    text=True).stdout
        assert "ganrun train optimizer=rmsprop" in screen and "optimizer==" not in screen, screen
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


# ---------------------------------------------------------------- 8. report tables


def test_report_keeps_its_markdown_table_whole_when_an_error_has_several_lines(tmp_path):
    from ganrun.commands import report

    for name, summary in (("a", {"status": "completed", "step": 4, "losses": {"loss/D": 1.0}}),
                          ("b", {"status": "failed", "error": "Traceback (most recent call last):\n  File x\n"
                                                              "RuntimeError: boom"})):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text(f"- loss={name}\n")
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    assert report.main([str(tmp_path)]) == 0
    rows = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("|")]
    assert len(rows) == 4 and len({row.count("|") for row in rows}) == 1  # header, rule, two runs: same columns
    assert "Traceback (most recent call last): / File x / RuntimeError: boom" in rows[-1]


# ---------------------------------------------------------------- 9. messages that say what to do


@pytest.mark.parametrize("args, message", [
    (["modle=mlp"], "modle: unknown key; did you mean model? (groups and top-level keys:"),
    (["train.stpes=5"], "train.stpes: unknown key; did you mean train.steps? (train keys:"),
    (["+train.stpes=5"], "train.stpes: unknown key, nothing would read it; did you mean train.steps?"),
    (["loss=hingee"], "loss=hingee: no such option; did you mean hinge? (loss options: gan, hinge,"),
    (["model.widht=3"], "model.widht: unknown key; did you mean model.width? (model keys:"),
    (["dataset=zip", "dataset.root=x"], "dataset.root: unknown key; did you mean dataset.path? (dataset keys: background, channels, image_size, labelled, path"),
    (["dataset=folder", "dataset.path=x"], "dataset.path: unknown key; did you mean dataset.root? (dataset keys:"),
    (["train.steps=abc"], "train.steps=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    (["dataset=folder", "dataset.root=a~b"], "dataset.root=a~b: Hydra cannot read this override "
                                             "(LexerNoViableAltException); quote a value that holds"),
    (["-m", "dataset=folder", "dataset.root=a#b"], "dataset.root=a#b: Hydra cannot read this override"),
])
def test_config_errors_name_the_key_and_suggest_the_closest(tmp_path, capsys, args, message):
    code, out, err = run_main(["train", *args, f"hydra.run.dir={tmp_path / 'r'}"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and ".;" not in err
    assert err.startswith(f"ganrun train: error: {message}"), err
    assert not (tmp_path / "r").exists()


def test_a_path_from_the_home_folder_reads_as_the_shell_would_expand_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    _images(tmp_path / "pics", 12)
    with _no_exit():  # `dataset.root=~/pics`: the shell leaves ~ after key= as it is, and Hydra cannot read it
        cli.main(["train", "dataset=folder", "dataset.root=~/pics", *SMALL_IMAGES, f"hydra.run.dir={tmp_path / 'r'}"])
    assert checkpoint.load(tmp_path / "r")["config"]["dataset"]["root"] == str(tmp_path / "pics")
    code, out, err = run_main(["sample", "ckpt=~/r", "n=2", f"out={tmp_path / 'g.png'}"], capsys)
    assert code in (0, None) and (tmp_path / "g.png").is_file(), err


def test_a_bad_data_path_keeps_outputs_latest_on_the_last_run_that_trained(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with _no_exit():
        cli.main(["train", *RING])
    good = only_run(tmp_path / "outputs")
    # a typo in the path: one line, exit 2, before any run folder
    code, out, err = run_main(["train", "dataset=zip", "dataset.path=pics.zpi", *SMALL_IMAGES], capsys)
    assert code == 2 and err.strip() == "ganrun train: error: dataset.path=pics.zpi: no such file; give the path of a .zip archive of images"
    assert only_run(tmp_path / "outputs") == good
    # a folder with no images is found only when it is read: the run fails, latest stays where it was
    (tmp_path / "empty").mkdir()
    code, out, err = run_main(["train", "dataset=folder", "dataset.root=empty", *SMALL_IMAGES], capsys)
    assert code == 2 and "dataset.root=empty holds no readable images" in err
    assert (tmp_path / "outputs" / "latest").resolve() == good.resolve()
    assert checkpoint.load(tmp_path / "outputs" / "latest")["step"] == 4  # what `sample ckpt=outputs/latest` reads


def test_a_zip_given_as_a_folder_says_which_dataset_reads_it(tmp_path, capsys):
    _images(tmp_path / "imgs", 2)
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as zf:
        zf.write(tmp_path / "imgs" / "img00.png", "img00.png")
    code, _, err = run_main(["train", "dataset=folder", f"dataset.root={tmp_path / 'x.zip'}", *TINY,
                             f"hydra.run.dir={tmp_path / 'r'}"], capsys)
    assert code == 2 and f"is a ZIP archive: use dataset=zip dataset.path={tmp_path / 'x.zip'}" in err


def test_a_file_that_is_not_a_checkpoint_never_leaks_torchs_advice(tmp_path, capsys):
    torch.save({"f": print}, tmp_path / "code.pt")  # a pickle that would run code
    (tmp_path / "empty.pt").write_bytes(b"")
    for name in ("code.pt", "empty.pt"):
        code, _, err = run_main(["sample", f"ckpt={tmp_path / name}"], capsys)
        assert code == 2 and "is not a ganrun checkpoint" in err and "weights_only" not in err
        assert len(err.strip().splitlines()) == 1


def test_eval_without_arguments_says_what_to_give(capsys):
    code, _, err = run_main(["eval"], capsys)
    assert code == 2 and "not both" not in err and "give ckpt=RUN" in err


# ---------------------------------------------------------------- 10. exactly the samples asked for


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory) -> Path:
    from conftest import compose_train

    from ganrun.training.run import run

    run_dir = tmp_path_factory.mktemp("cond") / "r"
    run(compose_train(*TINY, *TINY_MODEL["dcgan"], "model.conditional=true"), run_dir)
    return run_dir


def test_sample_writes_exactly_n_and_one_file_per_seed(conditional_run, tmp_path):
    from ganrun.commands import sample

    assert sample.main([f"ckpt={conditional_run}", "n=64", f"out={tmp_path / 'a.npy'}"]) == 0
    assert np.load(tmp_path / "a.npy").shape[0] == 64
    assert sample.main([f"ckpt={conditional_run}", "n=64", f"out={tmp_path / 'pngs'}/"]) == 0
    assert len(list((tmp_path / "pngs").iterdir())) == 64
    assert sample.main([f"ckpt={conditional_run}", "n=64", f"out={tmp_path / 'grid.png'}"]) == 0
    # ten rows (one per class), ceil(64 / 10) = 7 cells each, four of them left blank
    assert Image.open(tmp_path / "grid.png").size == (7 * 30 + 2, 10 * 30 + 2)
    assert sample.main([f"ckpt={conditional_run}", "seeds=0-9", f"out={tmp_path / 'seeds'}/"]) == 0
    names = sorted(p.name for p in (tmp_path / "seeds").iterdir())
    assert names == [f"seed{s:04d}-class{s}.png" for s in range(10)]


def test_class_rows_spread_n_over_the_classes():
    from ganrun.data.pictures import class_rows

    labels, per_row = class_rows(10, 64)
    # sample i draws class floor(10 i / 64): class c holds the i in [6.4 c, 6.4 (c + 1))
    assert len(labels) == 64 and per_row == 7 and torch.bincount(labels).tolist() == [7, 6, 7, 6, 6, 7, 6, 7, 6, 6]


def test_a_grid_of_one_or_two_classes_is_near_square(conditional_run, tmp_path):
    from ganrun.commands import sample
    from ganrun.data.pictures import class_rows

    labels, per_row = class_rows(10, 64, [3])
    assert per_row == 8 and labels.tolist() == [3] * 64
    labels, per_row = class_rows(10, 64, [3, 7])
    assert per_row == 8 and torch.bincount(labels).tolist()[3:8:4] == [32, 32]
    # as asked: `ganrun sample ckpt=RUN classes=[3]` was one row of 64 images
    assert sample.main([f"ckpt={conditional_run}", "classes=[3]", f"out={tmp_path / 'three.png'}"]) == 0
    width, height = Image.open(tmp_path / "three.png").size
    assert 0.8 < width / height < 1.25
    assert sample.main([f"ckpt={conditional_run}", "classes=[3,7]", "n=20", f"out={tmp_path / 'two.png'}"]) == 0
    width, height = Image.open(tmp_path / "two.png").size  # 5 per row: each class 2 rows, the second padded
    assert width / height == pytest.approx(5 / 4, rel=0.1)


def test_onnx_export_is_one_file(conditional_run, tmp_path):
    pytest.importorskip("onnxscript")
    from ganrun.commands import export

    assert export.main([f"ckpt={conditional_run}", "format=onnx", f"out={tmp_path / 'g.onnx'}"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.onnx"]


# ---------------------------------------------------------------- 11. the install a run needs


def test_make_train_installs_what_a_run_needs_and_make_test_the_rest(tmp_path):
    def dry(target: str) -> str:
        r = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), target], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout

    train, test = dry("train"), dry("test")
    assert "pip install --quiet -e ." in train and "[test]" not in train and "ganrun train" in train
    assert 'pip install --quiet -e ".[test]"' in test


def test_the_conditional_dcgan_trains_the_same_weights_twice_on_a_multithreaded_cpu():
    """D's class planes gathered by maps[y] had a backward (index_put_ with accumulate) whose sums came in
    a different order from run to run on two threads: no resume could be bit-identical. Three steps of the
    default model, twice in one process, must give equal weights."""
    from conftest import compose_train

    from ganrun.training.build import build
    from ganrun.training.run import seed_everything

    def three_steps():
        seed_everything(0)
        exp = build(compose_train("train.steps=3"))
        batches = exp.data.batches(32, torch.device("cpu"), seed=0, labels=True)
        for _ in range(3):
            exp.objective.step(exp.G, exp.D, exp.opt_G, exp.opt_D, batches, want_stats=False)
        return exp

    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        a, b = three_steps(), three_steps()
    finally:
        torch.set_num_threads(threads)
    for name, p in a.D.named_parameters():
        assert torch.equal(p, dict(b.D.named_parameters())[name]), name
    for name, p in a.G.named_parameters():
        assert torch.equal(p, dict(b.G.named_parameters())[name]), name
