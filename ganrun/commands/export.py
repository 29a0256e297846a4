"""`ganrun export ckpt=RUN format=safetensors|torchscript|onnx [out=FILE]`: the generator alone."""

from __future__ import annotations

from pathlib import Path

from ganrun.artifacts import checkpoint
from ganrun.artifacts.export import SUFFIXES, export
from ganrun.config import EXPORT_FORMATS, ConfigError, ExportConfig, parse_key_values


def main(args: list[str]) -> int:
    """Entry point for `ganrun export` (bad input raises a UserError: see ganrun.errors.run)."""
    cfg = parse_key_values(args, ExportConfig)
    if cfg.format not in EXPORT_FORMATS:
        raise ConfigError(f"format={cfg.format!r}: use {', '.join(EXPORT_FORMATS)}")
    ckpt = checkpoint.load(cfg.ckpt)
    src = Path(cfg.ckpt)
    default = (src if src.is_dir() else src.parent) / f"generator{SUFFIXES[cfg.format]}"
    out = export(ckpt, cfg.format, Path(cfg.out) if cfg.out else default, cfg.ema)
    print(f"wrote {out}")
    class_of = ckpt["data"].get("class_of")
    if class_of is not None:  # y is not the class a user asks for: say how to get there
        print(f"its y input is one of {len(class_of)} k-means clusters within the data's classes; the checkpoint's "
              f"data['class_of'] (and the safetensors metadata) gives each cluster's class")
    return 0
