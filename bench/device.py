"""Everything a GPU machine should check, as one command that prints one table (bench/device.sh runs it).

    bash bench/device.sh            # on a GPU: <= 8 minutes
    bash bench/device.sh --smoke    # the same parts on the CPU, a few steps each (CI runs it)

Parts, one or more rows each:
  1. the tests marked `cuda` (tests/test_cuda.py: AMP bf16 / fp16, torch.compile, channels-last, the EMA,
     resume on the device, a device checkpoint resumed on the CPU, pinned-memory loading), pass / fail;
  2. bench/throughput.py: ganrun's step against the bare loop of the same models (steps/s, ratio);
  3. bench/textbook.py and ganrun's default run on the same emoji set at 64 px: the textbook loop's steps/s
     against ganrun's, and ganrun's run of about 3 minutes with its FD (and what else its summary scored).
EMOJI=FILE.zip (or a folder) is the image set for part 3; without one a small stand-in set is written (its
FD means nothing: it checks the path). OUT=DIR keeps the outputs (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_EMOJI = ROOT.parent / "shared" / "data" / "emoji" / "emoji-google.zip"
GANRUN_64PX = 150  # seconds of training for part 3 on a GPU (the rest of 3 minutes: start-up and scoring)


def sh(cmd: list[str], log: Path, env: dict[str, str] | None = None, timeout: int = 900) -> tuple[int, str, float]:
    """Run cmd from the repository root; (exit code, its stdout, seconds). Output also goes to `log`."""
    start = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, **(env or {})})
        code, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        code, out, err = 124, str(e.stdout or ""), f"timed out after {timeout} s"
    log.write_text(f"$ {' '.join(cmd)}\n{out}\n--- stderr ---\n{err}")
    return code, out, time.perf_counter() - start


def tests(device: str, out: Path) -> list[tuple[str, str, str, str]]:
    xml = out / "cuda.xml"
    code, _, secs = sh([sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-p", "no:cacheprovider",
                        f"--junitxml={xml}"], out / "tests.log", {"GANRUN_TEST_DEVICE": device})
    if not xml.exists():
        return [("tests", "pytest -m cuda", f"exit {code}", f"{secs:.0f} s, see {out / 'tests.log'}")]
    rows = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        state = ("FAIL" if case.find("failure") is not None or case.find("error") is not None
                 else "skip" if case.find("skipped") is not None else "pass")
        rows.append(("test", case.get("name", "?"), state, f"{float(case.get('time', 0)):.1f} s"))
    return rows


def throughput(device: str, smoke: bool, out: Path) -> list[tuple[str, str, str, str]]:
    args = (["--quick", "--models", "mlp", "--losses", "gan"] if smoke else
            ["--models", "dcgan28", "dcgan64", "--losses", "gan", "wgan-gp", "--batches", "64", "--steps", "30"])
    code, text, _ = sh([sys.executable, "bench/throughput.py", "--device", device, *args], out / "throughput.log")
    rows = []
    for line in text.splitlines():
        cells = line.split()
        if len(cells) >= 8 and cells[3] == device:  # "dcgan64 gan b64 cuda ganrun bare images ratio"
            rows.append(("throughput", " ".join(cells[:3]), f"{cells[4]} vs bare {cells[5]} steps/s",
                         f"ratio {cells[7]}"))
    return rows or [("throughput", "bench/throughput.py", f"exit {code}", f"see {out / 'throughput.log'}")]


def stand_in_set(out: Path) -> Path:
    """48 random 64 px PNGs in a ZIP: the path of part 3 without the real set."""
    import numpy as np
    from PIL import Image

    path, rng = out / "stand-in.zip", np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as z:
        for i in range(48):
            png = out / "one.png"
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(png)
            z.write(png, f"img/{i:03d}.png")
    return path


def speed(summary: dict) -> float:
    """Training steps per second from a run's summary.json."""
    return float(summary.get("steps_per_s") or (summary.get("stats") or {}).get("steps_per_s") or 0.0)


def quality(device: str, smoke: bool, out: Path, images: Path) -> list[tuple[str, str, str, str]]:
    key = "dataset.path" if images.suffix == ".zip" else "dataset.root"
    data = [f"dataset={'zip' if images.suffix == '.zip' else 'folder'}", f"{key}={images}", "dataset.image_size=64"]
    code, text, _ = sh([sys.executable, "bench/textbook.py", "--data", *data, "--device", device, "--n", "500",
                        "--steps" if smoke else "--seconds", "3" if smoke else "20", "--out", str(out / "textbook")],
                       out / "textbook.log")
    book = json.loads(text.strip().splitlines()[-1]) if code == 0 else None
    rows = [("textbook loop", f"{images.name} 64 px", f"{book['steps_per_s']} steps/s" if book else f"exit {code}",
             f"{book['steps']} steps" if book else f"see {out / 'textbook.log'}")]
    # ganrun's default run for about GANRUN_64PX seconds at the rate of its first short run
    rate = 1.0
    if not smoke:
        probe = sh([sys.executable, "-m", "ganrun", "train", *data, "train.steps=200", f"train.device={device}",
                    "train.eval_every=0", "train.progress=false", f"hydra.run.dir={out / 'probe'}"], out / "probe.log")
        summary = out / "probe" / "summary.json"
        if probe[0] == 0 and summary.exists():
            rate = speed(json.loads(summary.read_text())) or 1.0
    steps = 3 if smoke else max(200, int(rate * GANRUN_64PX))
    code, _, secs = sh([sys.executable, "-m", "ganrun", "train", *data, f"train.steps={steps}", f"train.device={device}",
                        "train.progress=false", f"hydra.run.dir={out / 'ganrun'}"], out / "ganrun.log")
    summary = out / "ganrun" / "summary.json"
    if code != 0 or not summary.exists():
        return rows + [("ganrun run", f"{images.name} 64 px", f"exit {code}", f"see {out / 'ganrun.log'}")]
    s = json.loads(summary.read_text())
    metrics = s.get("metrics") or {}
    scored = (f"FD {metrics['fd']:.2f}" if "fd" in metrics else
              "scored: " + ", ".join(sorted(metrics)) if metrics else f"no metrics ({(s.get('metric_settings') or {}).get('skipped', 'none')})")
    rows.append(("ganrun run", f"{images.name} 64 px, {s['step']} steps",
                 f"{speed(s):.2f} steps/s", f"{secs:.0f} s wall, {scored}"))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="the CPU, a few steps each: checks the script itself")
    args = p.parse_args()
    import torch

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/device.sh: torch sees no CUDA GPU; use --smoke to check the script on the CPU")
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="ganrun-device-")) / "device"
    out.mkdir(parents=True, exist_ok=True)
    images = Path(os.environ["EMOJI"]) if os.environ.get("EMOJI") else (
        SHARED_EMOJI if SHARED_EMOJI.exists() else stand_in_set(out))
    start = time.perf_counter()
    rows = tests(device, out) + throughput(device, args.smoke, out) + quality(device, args.smoke, out, images)
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke)"
    print(f"\nbench/device.sh on {name}, torch {torch.__version__}, {time.perf_counter() - start:.0f} s; "
          f"outputs in {out}\n")
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in [("part", "what", "result", "detail"), tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    sys.exit(1 if any(r[2] == "FAIL" or r[2].startswith("exit") for r in rows) else 0)


if __name__ == "__main__":
    main()
