"""What a new user meets first: keys nothing reads, a dataset that cannot download, help on every
command, quiet short runs, and a report that says why a run failed."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from conftest import TINY, TINY_MODEL, compose_train

from ganrun import config
from ganrun.commands import cli, help


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """`ganrun ARGV` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err


@pytest.mark.parametrize("override, message", [
    ("+optimizer.lr=1e-3", "optimizer.lr is not a ganrun key; use optimizer.lr_g=X optimizer.lr_d=X"),
    ("optimizer.lr=1e-3", "optimizer.lr is not a ganrun key; use optimizer.lr_g=X optimizer.lr_d=X"),
    ("+foo=1", "foo: unknown key, nothing would read it (top-level keys: callbacks, dataset, logger, loss"),
    ("+train.foo=1", "train.foo: unknown key, nothing would read it (train keys: ada_kimg"),
    ("+optimizer.foo=1", "optimizer.foo: unknown key, nothing would read it (optimizer keys: _target_, alpha"),
    ("+train.epochs=3", "train.epochs is not a ganrun key; use train.steps=N"),
])
def test_a_key_nothing_reads_stops_the_run_before_its_folder(override, message, tmp_path, capsys):
    code, _, err = run_main(["train", override, f"hydra.run.dir={tmp_path / 'r'}"], capsys)
    assert code == 2 and err.strip() == f"ganrun train: error: {err.strip().split('error: ', 1)[1]}"
    assert message in err
    assert not (tmp_path / "r").exists()


def test_config_errors_found_after_composition_leave_no_run_folder(tmp_path, capsys):
    code, _, err = run_main(["train", "train.ema=1.5", f"hydra.run.dir={tmp_path / 'r'}"], capsys)
    assert code == 2 and "train.ema=1.5: must be in [0, 1)" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, message", [
    (["model=mlp,dcgna"], "model=dcgna: no such option; did you mean dcgan? (model options: dcgan, mlp"),
    (["train.steps=3,0"], "train.steps=0: must be >= 1"),
    (["train.steps=range(0,3)"], "train.steps=0: must be >= 1"),
    (["+train.foo=1,2", "model=mlp"], "train.foo: unknown key"),
    (["logger=[tensorboard,wandbb]"], "logger=wandbb: no such option; did you mean wandb? (logger options: mlflow, tensorboard, wandb)"),
])
def test_a_typo_anywhere_in_a_sweep_is_one_line(args, message, tmp_path, capsys):
    code, out, err = run_main(["train", "-m", *args, f"hydra.sweep.dir={tmp_path / 's'}"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and out == ""
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args, message", [
    (["dataset=folder", "dataset.root=.", "dataset.image_size=48"],
     "model=dcgan needs square 28, 32 or 64 px images, got 48x48; set dataset.image_size to one of [28, 32, 64]"),
    (["model=resnet"], "model=resnet needs square 32 or 64 px images, got 28x28; set dataset.image_size=32"),
    (["-m", "dataset=zip", "dataset.path=x.zip", "dataset.image_size=32,128"], "got 128x128"),
])
def test_an_image_size_the_model_cannot_take_is_refused_before_the_data_is_read(args, message, tmp_path, capsys,
                                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    zipfile.ZipFile(tmp_path / "x.zip", "w").close()  # there, but its images never read: the size is refused first
    code, out, err = run_main(["train", *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def test_single_runs_checks_each_swept_value_once():
    runs = cli.single_runs(["-m", "model=mlp,dcgan", "loss=gan,hinge,wgan", "train.steps=3",
                            "optimizer.lr_g=interval(1e-4,1e-3)", "hydra.sweep.dir=x"])
    first = ["model=mlp", "loss=gan", "train.steps=3", "optimizer.lr_g=0.0001"]
    assert runs[0] == first
    assert ["model=dcgan", *first[1:]] in runs and ["model=mlp", "loss=wgan", *first[2:]] in runs
    assert len(runs) == 1 + 1 + 2  # every value once, not the 6 combinations
    assert cli.single_runs(["model=mlp", "hydra.run.dir=x"]) == [["model=mlp"]]


def test_mnist_without_network_is_one_line_a_failed_summary_and_a_report_row(tmp_path, capsys, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\\nTried http://x, got:\\n"
                           "<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    run_dir = tmp_path / "runs" / "r"
    code, _, err = run_main(["train", "dataset=mnist", f"dataset.root={tmp_path / 'data'}", *TINY,
                             f"hydra.run.dir={run_dir}"], capsys)
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("ganrun train: error: could not download MNIST into")
    assert "Name or service not known" in line and "train-images-idx3-ubyte[.gz]" in line
    assert "dataset.root=DIR" in line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == line.split("error: ", 1)[1]
    code, out, _ = run_main(["report", str(tmp_path / "runs")], capsys)
    assert code == 0
    header, row = [ln for ln in out.splitlines() if ln.startswith("|") and "---" not in ln]
    assert header.split("|")[-2].strip() == "error" and "could not download MNIST" in row.split("|")[-2]


def test_an_unexpected_crash_still_leaves_a_failed_summary(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("ganrun.training.run.fit", broken)
    code, _, err = run_main(["train", "dataset=ring", "model=mlp", *TINY, *TINY_MODEL["mlp"],
                             f"hydra.run.dir={tmp_path}"], capsys)
    assert code == 1 and "ZeroDivisionError: a bug" in err  # a bug keeps its traceback
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == "ZeroDivisionError: a bug"


# ---------------------------------------------------------------- help and version


@pytest.mark.parametrize("command", ["sample", "eval", "export"])
def test_every_key_of_a_command_has_help(command, capsys):
    code, out, _ = run_main([command, "--help"], capsys)
    assert code == 0 and out.startswith(f"usage: ganrun {command}")
    fields = help.ABOUT[command][2].__dataclass_fields__
    rows = {ln.split()[0].split("=")[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    assert set(rows) == set(fields)
    for key, line in rows.items():
        assert len(line.split(None, 1)) == 2, f"{command} --help: {key} has no meaning"
    code, out, _ = run_main(["report", "--help"], capsys)
    assert code == 0 and "out=" in out


def test_train_help_gives_every_key_of_every_option_a_meaning_and_default():
    for group in ("dataset", "model", "loss"):
        for option in config.option_files(group):
            text = help.train_help([f"{group}={option}"])
            rows = [ln for ln in text.splitlines() if ln.startswith("  ") and "=" in ln.split()[0]]
            assert len(rows) > 30
            bare = [ln.split()[0] for ln in rows if len(ln.split(None, 1)) < 2]
            assert bare == [], f"{group}={option}: keys without a meaning: {bare}"
    text = help.train_help(["logger=[tensorboard,wandb,mlflow]"])
    rows = [ln for ln in text.splitlines() if ln.startswith("  logger.")]
    assert len(rows) == 10 and all(len(ln.split(None, 1)) == 2 for ln in rows)
    assert "logger: mlflow*, tensorboard*, wandb*" in text and "name=" in text
    every = config.option_files("regularizers")
    text = help.train_help([f"regularizers=[{','.join(every)}]"])
    rows = [ln for ln in text.splitlines() if ln.startswith("  regularizers.")]
    assert {ln.split(".")[1] for ln in rows} == set(every) and all(len(ln.split(None, 1)) == 2 for ln in rows)
    text = help.train_help(["loss=wgan-gp"])
    assert "loss: gan, hinge, lsgan, minimax, rpgan, wgan, wgan-gp*" in text
    assert "train.n_critic=5 " in text and "regularizers.gp.weight=10.0 " in text  # the recipe's values
    assert "docs/configs.md" in text


def test_train_help_and_version_on_the_command_line(capsys):
    code, out, _ = run_main(["train", "model=mlp", "--help"], capsys)
    assert code == 0 and "model: dcgan, mlp*, resnet, vae" in out and "model.hidden=[500,500]" in out
    code, out, _ = run_main(["train", "dataset=zip", "--help"], capsys)  # a key still to fill is shown
    assert code == 0 and "dataset.path=???" in out
    code, _, err = run_main(["train", "dataset=zipp", "--help"], capsys)
    assert code == 2 and "dataset=zipp: no such option; did you mean zip?" in err
    code, out, _ = run_main(["--version"], capsys)
    from importlib.metadata import version

    assert code == 0 and out.strip() == f"ganrun {version('ganrun')}"
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0 and "COMMAND --help" in out


# ---------------------------------------------------------------- less noise


def test_a_short_run_prints_no_collapse_warning_and_ends_with_its_metrics(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO)
    from ganrun.training.run import run

    cfg = compose_train("dataset=ring", "model=mlp", *TINY, *TINY_MODEL["mlp"], "train.steps=20")
    run(cfg, tmp_path / "r")
    assert "mode collapse" not in caplog.text and "won outright" not in caplog.text
    final = [r.getMessage() for r in caplog.records if r.getMessage().startswith("metrics: ")]
    assert len(final) == 1 and "modes " in final[0] and "hq_percent " in final[0]


def test_a_run_whose_generator_stays_collapsed_is_warned_once(tmp_path, caplog):
    """A G that barely learns (lr_g 1e-12, one hidden layer of 4) keeps its first, near-identical samples:
    after 400 steps in a row the run says so, once."""
    import logging

    caplog.set_level(logging.INFO)
    from ganrun.training.run import run

    cfg = compose_train("dataset=ring", "model=mlp", *TINY, *TINY_MODEL["mlp"], "model.hidden=[4]",
                        "optimizer.lr_g=1e-12", "train.steps=600", "train.log_every=50", "train.sample_every=600",
                        "train.ckpt_every=600", "train.eval_every=0")
    run(cfg, tmp_path / "r")
    warned = [r.getMessage() for r in caplog.records if "mode collapse" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("step 450: possible mode collapse") and "since step 50" in warned[0]


def test_report_legend_names_runs_by_what_they_vary():
    from ganrun.commands.report import run_labels

    runs = [{"run": "0", "overrides": ["loss=gan", "train.steps=4"]},
            {"run": "1", "overrides": ["loss=hinge", "train.steps=4"]}]
    assert run_labels(runs) == {"0": "0: loss=gan", "1": "1: loss=hinge"}
    assert run_labels([{"run": "r", "overrides": []}]) == {"r": "r"}


# ---------------------------------------------------------------- tab completion


def complete(line: str) -> list[str]:
    from ganrun.commands.completion import candidates

    return candidates(line)


def test_completion_offers_commands_groups_options_and_keys(tmp_path):
    assert complete("ganrun tr") == ["train "]
    assert complete("ganrun train model=") == ["model=dcgan", "model=mlp", "model=resnet", "model=vae"]
    assert "model.hidden=" in complete("ganrun train model=mlp model.h")  # keys of the config typed so far
    assert "model.hidden=" not in complete("ganrun train model.h")
    assert complete("ganrun train train.steps=") == ["train.steps=4500"]
    assert complete("ganrun train -m loss=gan,hi") == ["loss=gan,hinge"]
    assert complete("ganrun sample nr") == ["nrow="] and "inception=" in complete("ganrun eval in")
    (tmp_path / "run1").mkdir()
    assert complete(f"ganrun sample ckpt={tmp_path}/ru") == [f"ckpt={tmp_path}/run1/"]


BASH_TEST = r'''
eval "$(ganrun --completion bash)"
t() {  # what bash hands the function: the line, the cursor, the words split at spaces and at =
    COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$2"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    _ganrun_complete; printf '%s|' "${COMPREPLY[@]}"; echo
}
t "ganrun tr" "ganrun tr"
t "ganrun train model=ml" "ganrun train model = ml"
t "ganrun train model=" "ganrun train model ="
'''


def test_the_installed_bash_script_completes_through_ganrun(tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    bash = shutil.which("bash")
    if not bash:
        pytest.skip("no bash")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run([bash, "-c", BASH_TEST], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["train |", "mlp|", "dcgan|mlp|resnet|vae|"]  # the text after the `=`
    # Hydra's own flags, as Hydra's installed script calls them, are served too
    r = subprocess.run(["ganrun", "train", "-sc", "install=zsh"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "compdef _ganrun_complete ganrun" in r.stdout
    r = subprocess.run(["ganrun", "-sc", "query=bash"], capture_output=True, text=True,
                       env={**env, "COMP_LINE": "ganrun train optimizer=rm"})
    assert r.returncode == 0 and r.stdout.split() == ["optimizer=rmsprop"]
    r = subprocess.run(["ganrun", "--shell-completion"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "ganrun --completion bash" in r.stderr and "Traceback" not in r.stderr


def test_the_installed_zsh_script_completes_through_ganrun():
    import os
    import shutil
    import subprocess
    import sys

    zsh = shutil.which("zsh")
    if not zsh:
        pytest.skip("no zsh on this machine")
    # compadd / compdef stubbed: they print what zsh's completion system would receive
    code = ('compdef() { echo "compdef $*"; }; compadd() { print -l -- "${@[3,-1]}"; }; '
            'eval "$(ganrun --completion zsh)"; words=(ganrun train model=ml); CURRENT=3; _ganrun_complete; '
            'words=(ganrun ex); CURRENT=2; _ganrun_complete')
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run([zsh, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["compdef _ganrun_complete ganrun", "--", "model=mlp", "--", "export "]


# ---------------------------------------------------------------- run names, seeds


def test_a_named_run_goes_to_outputs_name_date_time(tmp_path, monkeypatch, capsys):
    import re

    monkeypatch.chdir(tmp_path)
    cli.main(["train", "name=ring-test", "dataset=ring", "model=mlp", *TINY, *TINY_MODEL["mlp"], "train.steps=2"])
    (run,) = (tmp_path / "outputs" / "ring-test").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", run.name) and (run / "summary.json").is_file()
    code, _, err = run_main(["train", "name=../elsewhere"], capsys)
    assert code == 2 and "name='../elsewhere': use letters" in err


def test_seed_ranges_as_stylegan_users_type_them():
    from ganrun.commands.sample import parse, parse_seeds
    from ganrun.config import ConfigError

    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("1,5,9") == [1, 5, 9]
    assert parse_seeds("0-2,10") == [0, 1, 2, 10] and parse_seeds("7") == [7]
    for bad in ("5-2", "a-b", "1,,2", "-3"):
        with pytest.raises(ConfigError, match="use a range A-B"):
            parse_seeds(bad)
    assert parse(["ckpt=x", "seeds=0-35"]).n == 36
    with pytest.raises(ConfigError, match="drop n"):
        parse(["ckpt=x", "seeds=0-3", "n=4"])


def test_a_seed_draws_the_same_image_whatever_the_other_seeds(tmp_path, capsys):
    import numpy as np

    from ganrun.training.run import run

    cfg = compose_train("dataset=mnist-sample", *TINY, *TINY_MODEL["dcgan"], "model.conditional=true",
                        "train.steps=2", "train.eval_n=100")
    run(cfg, tmp_path / "r")
    ckpt = str(tmp_path / "r")
    assert run_main(["sample", f"ckpt={ckpt}", "seeds=0-3", "classes=[1,7]", f"out={tmp_path / 'a.npy'}"],
                    capsys)[0] == 0
    assert run_main(["sample", f"ckpt={ckpt}", "seeds=2,9", "classes=[7]", f"out={tmp_path / 'b.npy'}"],
                    capsys)[0] == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape[0] == 8 and b.shape[0] == 2
    assert np.array_equal(a[4 + 2], b[0])  # seed 2 of class 7's row: the same image in both calls
    assert not np.array_equal(a[4 + 3], b[1])
    assert np.load(tmp_path / "a.labels.npy").tolist() == [1] * 4 + [7] * 4
    assert run_main(["sample", f"ckpt={ckpt}", "seeds=3,4", "classes=[5]", f"out={tmp_path / 'pngs'}/"],
                    capsys)[0] == 0
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["seed0003-class5.png", "seed0004-class5.png"]


# ---------------------------------------------------------------- hyperparameter search


def test_objective_is_the_final_metric_a_sweeper_minimises():
    from omegaconf import OmegaConf

    from ganrun.commands.train import objective
    from ganrun.config import ConfigError

    summary = {"run_dir": "r", "losses": {"loss/G": 0.7, "loss/D": 1.2}, "metrics": {"fd": 12.5, "recall": 0.4}}
    assert objective(OmegaConf.create({"objective": "auto"}), summary) == 12.5
    assert objective(OmegaConf.create({"objective": "recall"}), summary) == 0.4
    assert objective(OmegaConf.create({"objective": "loss/D"}), summary) == 1.2
    toy = {"run_dir": "r", "losses": {"loss/G": 0.7}, "metrics": {"reverse_kl": float("inf"), "energy": 0.3}}
    assert objective(OmegaConf.create({"objective": "auto"}), toy) == 0.3  # finite where the reverse KL is not
    with pytest.raises(ConfigError, match="objective=kid: this run has no such final value; use one of fd, loss/D"):
        objective(OmegaConf.create({"objective": "kid"}), summary)


@pytest.mark.slow  # 10-20 s: runs in `make test-all`, kept out of make test's 10 minutes
def test_optuna_sweeper_tries_three_settings_and_keeps_the_best(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from conftest import run_cli

    r = run_cli("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=0",
                "optimizer.lr_g=tag(log,interval(1e-4,1e-2))", "objective=loss/D", "dataset=ring", "model=mlp",
                *TINY, *TINY_MODEL["mlp"], "train.steps=20", "train.ckpt_every=0", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    import yaml

    result = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    runs = [json.loads((tmp_path / str(i) / "summary.json").read_text()) for i in range(3)]
    rates = {next(o for o in r["overrides"] if o.startswith("optimizer.lr_g=")) for r in runs}
    assert len(rates) == 3  # three different rates tried
    best = min(runs, key=lambda r: r["losses"]["loss/D"])
    assert result["best_value"] == pytest.approx(best["losses"]["loss/D"])
    assert f"optimizer.lr_g={result['best_params']['optimizer.lr_g']}" in best["overrides"]
