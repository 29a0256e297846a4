"""`ganrun export`: each format loads back and gives the checkpoint's images for the same z."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from conftest import TINY, TINY_MODEL, compose_train, run_cli

from ganrun.artifacts import checkpoint
from ganrun.artifacts.networks import load_generator
from ganrun.training.run import run


EXTRA = {"plain": ["model.conditional=false", "train.clusters=0"], "labels": ["train.clusters=0"],
         "within": ["train.clusters=20"],  # clusters within the labels: each cluster's class in the checkpoint
         "clusters": ["model.conditional=false", "train.clusters=12"]}  # the unlabelled default: clusters in the checkpoint


@pytest.fixture(scope="module", params=list(EXTRA), ids=list(EXTRA))
def trained(request, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("exp") / "r"
    extra = EXTRA[request.param]
    run(compose_train(*TINY, *TINY_MODEL["dcgan"], "train.ema=0.5", *extra), run_dir)
    return run_dir


def reference(run_dir, z, y):
    G = load_generator(checkpoint.load(run_dir), torch.device("cpu"))
    with torch.no_grad():
        return G(z) if y is None else G(z, y)


def inputs(run_dir):
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    n_classes = checkpoint.load(run_dir)["data"]["n_classes"]
    return z, (torch.tensor([1, 5, 9]) if n_classes and checkpoint.load(run_dir)["config"]["model"]["conditional"]
               else None)


def test_safetensors_export_rebuilds_the_same_generator(trained, tmp_path):
    pytest.importorskip("safetensors")
    from ganrun.artifacts.export import load_safetensors

    r = run_cli("export", f"ckpt={trained}", "format=safetensors", f"out={tmp_path / 'g.safetensors'}")
    assert r.returncode == 0, r.stderr
    z, y = inputs(trained)
    G = load_safetensors(tmp_path / "g.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "g.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask  # for sharing, as any new file
    with torch.no_grad():
        out = G(z) if y is None else G(z, y)
    assert torch.equal(out, reference(trained, z, y))


def test_torchscript_export_needs_no_ganrun(trained, tmp_path, capsys):
    from ganrun.commands.export import main

    assert main([f"ckpt={trained}", "format=torchscript", f"out={tmp_path / 'g.pt'}"]) == 0
    within = checkpoint.load(trained)["data"].get("class_of") is not None
    assert ("clusters within the data's classes" in capsys.readouterr().out) == within  # y is a cluster: said
    G = torch.jit.load(str(tmp_path / "g.pt"))
    z, y = inputs(trained)
    out = G(z) if y is None else G(z, y)
    assert torch.allclose(out, reference(trained, z, y), atol=1e-6)


def test_torchscript_export_says_torchs_deprecation_in_one_line(trained, tmp_path, capfd, caplog, recwarn):
    from ganrun.commands.export import main

    assert main([f"ckpt={trained}", "format=torchscript", f"out={tmp_path / 'g.pt'}"]) == 0
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)] and "_trace.py" not in capfd.readouterr().err
    deprecated = any(issubclass(w.category, FutureWarning) for w in _trace_warnings())
    assert ("marks TorchScript deprecated" in caplog.text) == deprecated


def _trace_warnings() -> list:
    """What torch.jit.trace warns of in this torch, traced here on a tiny module."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2))
    return list(said)


def test_onnx_export_runs_in_onnxruntime(trained, tmp_path, capfd):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from ganrun.commands.export import main

    assert main([f"ckpt={trained}", "format=onnx", f"out={tmp_path / 'g.onnx'}"]) == 0
    out = capfd.readouterr()  # the exporter's progress lines and warnings are not the user's concern
    assert out.out.splitlines()[0] == f"wrote {tmp_path / 'g.onnx'}" and "UserWarning" not in out.err
    assert len(out.out.splitlines()) == 1 + (checkpoint.load(trained)["data"].get("class_of") is not None)
    session = ort.InferenceSession(str(tmp_path / "g.onnx"))
    z, y = inputs(trained)
    feed = {"z": z.numpy()} | ({"y": y.numpy()} if y is not None else {})
    (out,) = session.run(["x"], feed)
    assert torch.allclose(torch.from_numpy(out), reference(trained, z, y), atol=1e-4)


def test_export_errors_are_one_line(trained, capsys):
    from ganrun import errors
    from ganrun.commands.export import main

    assert errors.run("export", main, [f"ckpt={trained}", "format=pickle"]) == 2  # the path the CLI takes
    assert "format='pickle': use safetensors, torchscript, onnx" in capsys.readouterr().err
