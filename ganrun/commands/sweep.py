"""The table printed at the end of a `ganrun train -m` sweep (a Hydra callback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ganrun.metrics import seeds
from ganrun.metrics.floor import metric_cell


def read_run(run_dir: Path, name: str, missing: str = "no summary") -> dict[str, Any]:
    """A run folder's row: its summary.json (or status `missing`) and its overrides, named `name`."""
    summary_file = run_dir / "summary.json"
    try:
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {"status": missing}
    except json.JSONDecodeError:  # being written right now
        summary = {"status": missing}
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    overrides = list(OmegaConf.load(overrides_file)) if overrides_file.is_file() else []
    return {**summary, "run": name, "overrides": overrides}


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per run folder under sweep_dir: its overrides and its summary.json (or 'no summary')."""
    return [read_run(p.parent.parent, p.parent.parent.name)
            for p in sorted(sweep_dir.glob("*/.hydra/overrides.yaml"),
                            key=lambda p: (len(p.parent.parent.name), p.parent.parent.name))]


def varying(rows: list[dict[str, Any]]) -> list[str]:
    """Each row's overrides minus those every run shares (what the sweep varies), as text."""
    common = set.intersection(*(set(r["overrides"]) for r in rows)) if len(rows) > 1 else set()
    return [" ".join(o for o in r["overrides"] if o not in common) for r in rows]


def results_table(rows: list[dict[str, Any]], missing: str = "-") -> tuple[list[str], list[list[str]]]:
    """(header, cells) for runs: run, what the sweep varies, status, step, final losses, final metrics (each
    distance beside its real-data floor), wall time, and the error of any run that failed. The sweep's table
    and `ganrun report` both use it. Runs scored in different feature spaces never share a metric's column:
    each space gets its own, named `fd [SPACE]`."""
    spaces = {seeds.feature_space(r) for r in rows if r.get("metrics")}
    split = len(spaces) > 1
    columns = sorted({(k, seeds.feature_space(r) if split else "") for r in rows for k in r.get("metrics", {})})
    errors = any(r.get("error") for r in rows)  # a failed or interrupted run says why
    header = ["run", "overrides", "status", "step", "loss/D", "loss/G",
              *(f"{k} [{space}]" if space else k for k, space in columns), "time_s"] + ["error"] * errors
    body = []
    for r, overrides in zip(rows, varying(rows) if rows else []):
        losses = r.get("losses", {})
        body.append([r["run"], overrides or "(defaults)", r.get("status", "?"), str(r.get("step", missing)),
                     *(f"{losses[k]:.4f}" if k in losses else missing for k in ("loss/D", "loss/G")),
                     *(metric_cell(r, k, missing) if not split or seeds.feature_space(r) == space else missing
                       for k, space in columns),
                     f"{r['wall_time_s']:.1f}" if "wall_time_s" in r else missing]
                    + [one_line_text(r.get("error")) or missing] * errors)
    return header, body


def one_line_text(text: str | None) -> str:
    """A multi-line message (a traceback's tail, Hydra's text) as one table cell: its lines joined by " / "."""
    return " / ".join(line.strip() for line in str(text or "").splitlines() if line.strip())


def by_space(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(title, runs) for each feature space the runs' metrics are in, then the runs without metrics (failed,
    running), where there are several spaces (runs on different data); else [("", rows)]: one table."""
    spaces = sorted({seeds.feature_space(r) for r in rows if r.get("metrics")})
    if len(spaces) < 2:
        return [("", rows)]
    groups = [(f"Feature space: {space or 'the toy protocols'}",
               [r for r in rows if r.get("metrics") and seeds.feature_space(r) == space]) for space in spaces]
    rest = [r for r in rows if not r.get("metrics")]
    return groups + ([("Without metrics", rest)] if rest else [])


def format_table(rows: list[dict[str, Any]]) -> str:
    """The results table as aligned plain text (one per feature space: by_space); where a setting ran with
    several seeds, the settings over their seeds below it (ganrun.metrics.seeds)."""
    text = "\n\n".join((f"{title}\n" if title else "") + aligned(*results_table(group))
                         for title, group in by_space(rows))
    if seeds.has_seeds(rows):
        text += (f"\n\nover seeds: mean ± 95% interval ({seeds.METHOD}), n seeds\n"
                 + aligned(*seeds.grouped_table(rows)))
        pairs = seeds.differences(rows)
        if pairs:
            text += (f"\n\nsettings compared ({seeds.DIFF_METHOD} interval of the difference):\n" + "\n".join(pairs)
                     + f"\n({seeds.by_chance(pairs)})")
    return text


def aligned(header: list[str], body: list[list[str]]) -> str:
    """A table as aligned plain text."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class SweepTable(Callback):
    """After a multirun, print a table of its runs and their final losses."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect(sweep_dir)
        if rows:
            print(f"\nsweep {sweep_dir}: {len(rows)} runs\n{format_table(rows)}", flush=True)
        failed = [r["run"] for r in rows if r.get("status") != "completed"]
        if failed:
            print(f"ganrun train: {len(failed)} of {len(rows)} runs did not complete: {', '.join(failed)}",
                  file=sys.stderr)
            sys.exit(1)
