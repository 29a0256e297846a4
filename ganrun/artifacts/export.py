"""The generator alone, in eval mode (BatchNorm running statistics), for sharing:

- safetensors: G's weights plus, in the file's metadata, the model config, data shape and class
  count, so `load_safetensors` rebuilds G with ganrun and no pickle runs.
- torchscript: a traced module, loadable with `torch.jit.load` and no ganrun.
- onnx: a graph with input `z` (batch, latent_dim) [and `y` (batch,) int64 labels for a
  conditional G] and output `x`, with a dynamic batch size, in one file (needs `onnx` and `onnxscript`)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ganrun.artifacts.networks import load_generator, networks
from ganrun.config import EXPORT_FORMATS, ConfigError

log = logging.getLogger(__name__)

SUFFIXES = {"safetensors": ".safetensors", "torchscript": ".pt", "onnx": ".onnx"}  # config.EXPORT_FORMATS


class _Labelled(nn.Module):
    """G with a positional label input, for tracing and ONNX."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.G(z, y)


def example_inputs(G: nn.Module, batch: int = 2) -> tuple[torch.Tensor, ...]:
    z = torch.randn(batch, G.latent_dim)
    return (z, torch.arange(batch) % G.n_classes) if G.n_classes else (z,)


def export(ckpt: dict, fmt: str, out: Path, ema: bool | None = None) -> Path:
    """Write G in `fmt` to `out`; returns the path."""
    G = load_generator(ckpt, torch.device("cpu"), ema)
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs = example_inputs(G)
    module = _Labelled(G).eval() if len(inputs) == 2 else G
    if fmt == "safetensors":
        try:
            from safetensors.torch import save
        except ImportError:
            raise ConfigError("format=safetensors needs the safetensors package: pip install -e '.[export]'") from None
        data = {k: v.tolist() if torch.is_tensor(v) else v for k, v in ckpt["data"].items()}  # clusters: a tensor
        meta = {"ganrun_model": json.dumps(ckpt["config"]["model"]), "data": json.dumps(data),
                "plugins": json.dumps(ckpt["config"].get("plugins", []))}
        # written by Python, so with a new file's usual permissions (safetensors' save_file gives its owner's alone)
        out.write_bytes(save({k: v.contiguous() for k, v in G.state_dict().items()}, metadata=meta))
    elif fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", FutureWarning)
            traced = torch.jit.trace(module, inputs)
        traced.save(str(out))
        if any(issubclass(w.category, FutureWarning) for w in said):  # torch's two, with its own file paths
            log.warning("format=torchscript: this torch marks TorchScript deprecated; the file loads with "
                        "torch.jit.load today, and format=onnx or format=safetensors are the formats to keep")
    elif fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError:
            raise ConfigError("format=onnx needs the onnx and onnxscript packages: pip install -e '.[export]'") from None
        names = ["z", "y"][:len(inputs)]
        batch = torch.export.Dim("batch", min=1)
        with warnings.catch_warnings():  # the exporter's notes on axis names are not the user's concern
            warnings.simplefilter("ignore", UserWarning)
            torch.onnx.export(module, inputs, str(out), input_names=names, output_names=["x"],
                              dynamic_shapes={name: {0: batch} for name in names}, dynamo=True, verbose=False,
                              external_data=False)  # one self-contained file (G is far below ONNX's 2 GB limit)
    else:
        raise ConfigError(f"format={fmt!r}: use {', '.join(EXPORT_FORMATS)}")
    return out


def load_safetensors(path: str | Path) -> nn.Module:
    """Rebuild G from a `format=safetensors` export (eval mode)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    data = json.loads(meta["data"])
    G, _ = networks(json.loads(meta["ganrun_model"]), data, json.loads(meta.get("plugins", "[]")))
    G.load_state_dict(load_file(str(path)))
    return G.eval()


