"""Experiment trackers beside TensorBoard (logger=[...]): composing the group, refusing what nothing would read,
a missing package, and real runs into an offline wandb run and a real MLflow tracking server."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TINY, TINY_MODEL, compose_train
from test_train import scalars

from ganrun import config
from ganrun.artifacts import trackers
from ganrun.config import ConfigError
from ganrun.training.run import run

TOY = ["dataset=ring", "model=mlp", *TINY, *TINY_MODEL["mlp"]]
ALL = ["logger=[tensorboard,wandb,mlflow]", "logger.wandb.project=X", "logger.wandb.mode=disabled",
       "logger.wandb.tags=[a,b]", "logger.mlflow.tracking_uri=http://127.0.0.1:5000", "logger.mlflow.experiment=gans"]


@pytest.fixture(autouse=True)
def _wandb_stays_local(monkeypatch):
    """Nothing here may reach a server: wandb without error reports and quiet (its background process
    keeps the environment of the first run in this process)."""
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_tensorboard_alone_by_default():
    cfg = compose_train()
    assert list(cfg.logger) == ["tensorboard"]
    assert list(compose_train("logger=[]").logger) == []
    assert list(compose_train("logger=wandb").logger) == ["wandb"]


class FakeMlflowClient:
    """Records what the MLflow tracker asks of a tracking server."""

    def __init__(self, uri):
        self.tracking_uri, self.calls = uri, []

    def get_experiment_by_name(self, name):
        return None

    def create_experiment(self, name):
        self.calls.append(("experiment", name))
        return "7"

    def create_run(self, exp_id, run_name):
        self.calls.append(("run", exp_id, run_name))
        return type("R", (), {"info": type("I", (), {"run_id": "r1"})})()

    def log_batch(self, run_id, metrics=(), params=()):
        self.calls.append(("batch", run_id, [(m.key, m.value, m.step) for m in metrics],
                           {p.key: p.value for p in params}))

    def set_terminated(self, run_id, status):
        self.calls.append(("end", run_id, status))


def test_all_three_compose_and_open(tmp_path, monkeypatch):
    import mlflow

    cfg = compose_train(*TOY, *ALL)
    config.validate(cfg)
    assert list(cfg.logger) == ["tensorboard", "wandb", "mlflow"]
    assert cfg.logger.wandb.project == "X" and list(cfg.logger.wandb.tags) == ["a", "b"]
    assert cfg.logger.mlflow.experiment == "gans" and cfg.logger.mlflow.tracking_uri == "http://127.0.0.1:5000"
    monkeypatch.setattr(mlflow, "MlflowClient", FakeMlflowClient)
    monkeypatch.chdir(tmp_path)
    from omegaconf import OmegaConf

    from ganrun.config.targets import instantiate

    built = {name: instantiate(node, f"logger.{name}") for name, node in cfg.logger.items()}
    params = config.flat_items(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    writer = trackers.open_trackers(built, tmp_path / "run", params)
    assert [type(t) for t in writer.trackers] == [trackers.TensorBoard, trackers.Wandb, trackers.Mlflow]
    writer.add_scalar("D(G(z))", 0.25, 2)
    writer.add_scalar("loss/D", 1.5, 2)
    writer.close("completed")
    client = writer.trackers[2].client
    assert client.tracking_uri == "http://127.0.0.1:5000"
    (_, name), (_, exp_id, run_name), params, metrics, end = client.calls
    assert (name, exp_id, run_name) == ("gans", "7", "run")  # the run folder, relative to the current one
    assert params[3]["train.steps"] == "4" and params[3]["model.hidden"] == "[16, 16]"
    assert params[3]["logger.wandb.project"] == "X" and params[2] == []
    assert metrics[2] == [("D_G_z", 0.25, 2), ("loss/D", 1.5, 2)] and end == ("end", "r1", "FINISHED")
    assert scalars(tmp_path / "run")["loss/D"][0].step == 2


def test_wandb_arguments_take_the_environment_and_continue_a_run(tmp_path, monkeypatch):
    from ganrun.config.targets import instantiate

    wandb = instantiate(compose_train("logger=wandb").logger.wandb, "logger.wandb")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    args = wandb.init_args(tmp_path / "run", None)  # no mode: wandb's default (online)
    assert args == {"project": "ganrun", "name": str(tmp_path / "run"), "dir": str(tmp_path / "run")}
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = wandb.init_args(tmp_path / "run", "abc123")
    assert (args["dir"], args["mode"]) == (str(tmp_path / "elsewhere"), "offline")
    assert (args["id"], args["resume"]) == ("abc123", "allow")
    mine = trackers.Wandb(mode="disabled", dir=str(tmp_path / "mine"))  # the config wins over the environment
    assert mine.init_args(tmp_path / "run", None)["mode"] == "disabled"
    assert (tmp_path / "mine").is_dir() and (tmp_path / "elsewhere").is_dir()


@pytest.mark.parametrize("overrides, message", [
    (["logger=[tensorboard,wandb]", "logger.wandb.projekt=X"], "logger.wandb.projekt: unknown key; did you mean "
                                                               "logger.wandb.project? (logger.wandb keys:"),
    (["logger.tensorboard.log_dir=x"], "logger.tensorboard.log_dir: unknown key (logger.tensorboard keys: )"),
    (["logger.wandb.project=X"], "logger.wandb is set but wandb is not picked; add it: logger=[tensorboard,wandb]"),
])
def test_unknown_tracker_key_fails_composition(overrides, message):
    with pytest.raises(ConfigError) as e:
        config.compose(overrides)
    assert message in str(e.value)


def test_a_tracker_setting_of_the_wrong_type_is_refused():
    with pytest.raises(ConfigError, match="logger.mlflow.tracking_uri=.*expected str or NoneType"):
        config.validate(compose_train("logger=mlflow", "logger.mlflow.tracking_uri=[1,2]"))


@pytest.mark.parametrize("overrides, message", [
    (["logger=[tensorboard,wandb]", "+logger.wandb.projekt=X"],
     "logger.wandb.projekt: unknown key for ganrun.artifacts.trackers.Wandb; allowed keys: project, entity"),
    (["+logger.tensorboard.log_dir=x"],
     "logger.tensorboard.log_dir: unknown key for ganrun.artifacts.trackers.TensorBoard; allowed keys: (none)"),
    (["+logger.mlflow.experiment=x"], "logger.mlflow is set but mlflow is not picked; add it: logger=[tensorboard,mlf"),
    (["+logger.comet.project=x"], "logger.comet is set but comet is not picked; add it: logger=[tensorboard,comet]"),
    (["logger=wandb", "logger.wandb.mode=onlin"], "logger.wandb.mode='onlin': use online, offline, disabled"),
])
def test_keys_added_with_plus_are_refused(overrides, message):
    with pytest.raises(ConfigError) as e:
        config.validate(compose_train(*overrides))
    assert message in str(e.value)


@pytest.mark.parametrize("package", ["wandb", "mlflow"])
def test_missing_package_is_one_line(package, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # what `import` does when the package is not installed
    with pytest.raises(ConfigError) as e:
        config.validate(compose_train(f"logger=[tensorboard,{package}]"))
    assert str(e.value) == f"logger={package} needs the {package} package: pip install 'ganrun[{package}]'"


def test_missing_package_stops_the_cli_before_the_run_folder(tmp_path):
    code = "import sys; sys.modules['wandb'] = None; from ganrun.commands.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code, "train", "logger=[tensorboard,wandb]",
                        f"hydra.run.dir={tmp_path / 'r'}"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("ganrun train: error: logger=wandb needs the wandb package: "
                                "pip install 'ganrun[wandb]'")
    assert not (tmp_path / "r").exists()


def wandb_records(run_file: Path) -> list:
    """The protobuf records of an offline run's .wandb file: a 7-byte header, then a LevelDB-style log
    (32 KiB blocks; each chunk has a crc32, a length and a type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def finished_records(run_file: Path, wait_s: float = 60.0) -> list:
    """The run file's records once wandb's writer has put its exit record there (it writes in the
    background, so a loaded machine may still be at it when the run has returned)."""
    deadline = time.monotonic() + wait_s
    while True:
        records = wandb_records(run_file)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def wandb_history(records: list) -> dict[int, dict]:
    """{step: {key: value}} from the history records (nested keys such as samples/path joined by /)."""
    rows: dict[int, dict] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            rows.setdefault(row["_step"], {}).update(row)
    return rows


def test_wandb_offline_run_holds_what_tensorboard_got(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network, files only
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    cfg = compose_train(*TOY, "train.eval_every=2", "logger=[tensorboard,wandb]", "logger.wandb.mode=offline",
                        "logger.wandb.project=gans", "logger.wandb.tags=[tiny]")
    summary = run(cfg, tmp_path / "run")
    run_id = summary["trackers"]["wandb"]
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["trackers"] == {"wandb": run_id}
    run_dir = next((tmp_path / "wb" / "wandb").glob(f"offline-run-*-{run_id}"))
    records = finished_records(run_dir / f"run-{run_id}.wandb")
    history = wandb_history(records)
    tb = scalars(tmp_path / "run")
    tags = [t for t in tb if t != "images" and not t.startswith("hparams/")]
    assert "loss/D" in tags and "D(G(z))" in tags and "eval/modes" in tags
    for tag in tags:
        assert [(e.step, pytest.approx(e.value)) for e in tb[tag]] == [
            (step, row[tag]) for step, row in sorted(history.items()) if tag in row], \
            f"{tag}: wandb's rows {({step: sorted(row) for step, row in history.items()})}"
    for step in (2, 4):  # the sample grids, as image files of the run
        assert (run_dir / "files" / history[step]["samples/path"]).is_file()
    config_items = {i.key: json.loads(i.value_json) for r in records if r.WhichOneof("record_type") == "run"
                    for i in r.run.config.update}
    config_items.update({i.key: json.loads(i.value_json) for r in records if r.WhichOneof("record_type") == "config"
                         for i in r.config.update})
    assert config_items["train.steps"] == 4 and config_items["model.hidden"] == [16, 16]
    final = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for r in records
             if r.WhichOneof("record_type") == "summary" for i in r.summary.update}
    assert final["hparams/loss/D"] == pytest.approx(summary["losses"]["loss/D"])
    assert final["hparams/eval/modes"] == summary["metrics"]["modes"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 with its store and artifacts in tmp_path; yields its URL."""
    exe = Path(sys.executable).parent / "mlflow"
    if not exe.exists():
        pytest.skip("no mlflow command beside this python")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}",
                               "--artifacts-destination", str(tmp_path / "artifacts")],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "mlflow server did not come up in 180 s"
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.mark.slow
def test_mlflow_server_gets_metrics_params_and_samples_and_resume_continues(tmp_path, mlflow_server):
    from mlflow import MlflowClient

    overrides = [*TOY, "logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={mlflow_server}",
                 "logger.mlflow.experiment=gans", "logger.mlflow.run_name=tiny"]
    summary = run(compose_train(*overrides), tmp_path / "run")
    client = MlflowClient(mlflow_server)
    (found,) = client.search_runs([client.get_experiment_by_name("gans").experiment_id])
    run_id = found.info.run_id
    assert summary["trackers"] == {"mlflow": run_id}
    assert found.info.run_name == "tiny" and found.info.status == "FINISHED"
    tb = scalars(tmp_path / "run")
    for tag in (t for t in tb if t != "images" and not t.startswith("hparams/")):
        history = client.get_metric_history(run_id, trackers.mlflow_key(tag))
        expected = [(e.step, max(-sys.float_info.max, min(e.value, sys.float_info.max))) for e in tb[tag]]
        assert [(m.step, pytest.approx(m.value)) for m in history] == expected, tag  # MLflow stores inf as max float
    assert client.get_metric_history(run_id, "hparams/loss/D")[0].step == 4
    params = found.data.params
    assert params["train.steps"] == "4" and params["dataset._target_"] == compose_train(*TOY).dataset._target_
    assert params["logger.mlflow.experiment"] == "gans"
    assert [a.path for a in client.list_artifacts(run_id, "samples")] == ["samples/step_000002.png",
                                                                         "samples/step_000004.png"]
    # resume=RUN continues the same MLflow run: later steps join its curves, new keys its params
    summary = run(compose_train(*overrides, "train.steps=6", f"resume={tmp_path / 'run'}"), tmp_path / "run")
    assert summary["trackers"] == {"mlflow": run_id} and len(client.search_runs([found.info.experiment_id])) == 1
    assert [m.step for m in client.get_metric_history(run_id, "loss/D")] == [2, 4, 6]
    assert client.get_run(run_id).data.params["train.steps"] == "4"  # MLflow keeps a param's first value


def test_cli_names_the_tracker_to_pick(tmp_path, monkeypatch, capsys):
    from ganrun.commands import cli

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.check_composes(["logger.mlflow.experiment=gans"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().endswith("mlflow is not picked; add it: logger=[tensorboard,mlflow]")
