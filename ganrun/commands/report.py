"""`ganrun report DIR [out=PREFIX]`: every run under DIR (a run, a sweep or all of outputs/) as a
Markdown table, a CSV file and one PNG of losses and metrics against steps, one line per run.
A run without a summary.json yet (a sweep still running) is listed as "running" with what its
TensorBoard file holds so far."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ganrun.commands.sweep import by_space, read_run, results_table, varying
from ganrun.errors import ConfigError
from ganrun.metrics import budget, seeds

CURVES = ("loss/D", "loss/G")  # plotted for every run, beside every eval/ metric found
MAX_LEGEND = 12  # runs named in report.png's legend; past that the legend would hide the panels


def find_runs(root: Path) -> list[Path]:
    """Run folders at or under root (those with a .hydra/overrides.yaml), in a stable order."""
    found = {p.parent.parent for p in root.rglob(".hydra/overrides.yaml") if not p.parent.parent.is_symlink()}
    return sorted(found, key=lambda p: [(len(part), part) for part in p.relative_to(root).parts])


def scalars(run_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """tag -> (steps, values) of the run's TensorBoard scalars (losses and eval metrics)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags().get("scalars", []):
        if tag in CURVES or tag.startswith(("eval/", "eval_real/")):
            events = acc.Scalars(tag)
            out[tag] = ([e.step for e in events], [e.value for e in events])
    return out


def table_rows(root: Path) -> tuple[list[str], list[list[str]], list[dict[str, Any]]]:
    """(header, rows as text, the raw runs) for every run under root."""
    runs = []
    for run_dir in find_runs(root):
        name = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
        row = read_run(run_dir, name, missing="running")
        row["dir"] = run_dir
        if row["status"] == "running":  # no summary yet: the last logged values
            curves = scalars(run_dir)
            row["losses"] = {k: v[1][-1] for k, v in curves.items() if k in CURVES and v[1]}
            row["step"] = max((v[0][-1] for v in curves.values() if v[0]), default=0)
        runs.append(row)
    header, body = results_table(runs, missing="")
    return header, body, runs


def markdown(header: list[str], body: list[list[str]]) -> str:
    cells = [[c.replace("|", "\\|") for c in row] for row in [header, *body]]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "---|" * len(header))
    return "\n".join(lines) + "\n"


def space_tables(runs: list[dict[str, Any]]) -> str:
    """The runs' Markdown table; where they were scored in several feature spaces (runs on different data),
    one table per space, each with only its own metrics' columns, then the runs without metrics (failed,
    running). The CSV keeps every run in one table."""
    return "\n".join((f"## {title}\n\n{counted(group)}\n\n" if title else "")
                     + markdown(*results_table(group, missing="")) for title, group in by_space(runs))


def counted(runs: list[Any]) -> str:
    return f"{len(runs)} run{'s' * (len(runs) > 1)}"


def seed_section(runs: list[dict[str, Any]]) -> str:
    """Where some setting ran with several seeds: the settings over their seeds and the pairs that differ
    beyond the seed noise, as Markdown ("" otherwise)."""
    if not seeds.has_seeds(runs):
        return ""
    text = (f"\n## Over seeds\n\nEach metric's mean ± the half-width of its 95% interval ({seeds.METHOD}) "
            f"over a setting's completed runs (n).\n\n" + markdown(*seeds.grouped_table(runs)))
    pairs = seeds.differences(runs)
    if pairs:
        text += (f"\nDifferences of the means ({seeds.DIFF_METHOD} interval; \"differ\": the interval excludes 0):"
                 "\n\n" + "".join(f"- {line}\n" for line in pairs) + f"\n({seeds.by_chance(pairs)}.)\n")
    return text


def budget_choice(runs: list[dict[str, Any]], options: dict[str, str]) -> tuple[str, str] | None:
    """(KEY, METRIC) of by=KEY [metric=NAME] (metric: fd where the runs have it), or None without by=."""
    if "by" not in options:
        if "metric" in options or "ref" in options:
            raise ConfigError(f"{'metric' if 'metric' in options else 'ref'}= goes with by=KEY: the budget curves "
                              "of the runs grouped by KEY")
        return None
    spaces = sorted({seeds.feature_space(r) for r in runs if r.get("status") == "completed" and r.get("metrics")})
    if len(spaces) > 1:
        raise ConfigError(f"by={options['by']}: the runs here were scored in {len(spaces)} feature spaces "
                          f"({'; '.join(s or 'toy protocol' for s in spaces)}), whose numbers do not compare; "
                          "report a folder of runs on one data set")
    groups = budget.group_by_key(runs, options["by"])
    if "ref" in options and options["ref"] not in groups:
        raise ConfigError(f"ref={options['ref']}: no completed run has {options['by']}={options['ref']}; "
                          f"use one of {', '.join(groups) or '(none)'}")
    names = sorted({k for r in runs for k in (r.get("metrics") or {})})
    metric = options.get("metric") or ("fd" if "fd" in names else next(iter(names), ""))
    if metric not in names:
        raise ConfigError(f"metric={metric}: no run here has it; use one of {', '.join(names) or '(none: no metrics)'}")
    return options["by"], metric


def budget_section(runs: list[dict[str, Any]], choice: tuple[str, str] | None, ref: str | None = None) -> str:
    """With by=KEY: the best metric found after k trials per value of KEY, and each group's best against
    the reference group's (ref=VALUE, else the best group), as Markdown."""
    if choice is None:
        return ""
    key, metric = choice
    text = (f"\n## Budget: the best {metric} after k trials, by {key}\n\nMedian [25th-75th percentile] over "
            f"{budget.ORDERS} random orders of each group's completed runs "
            f"({'lower' if metric in budget.LOWER_IS_BETTER else 'higher'} is better).\n\n"
            + markdown(*budget.table(runs, key, metric)))
    ref, lines = budget.compared(runs, key, metric, ref)
    if lines:
        text += (f"\nEach group's best {metric} minus {key}={ref}'s, with its 95% interval ({budget.DIFF_METHOD}):"
                 "\n\n" + "".join(f"- {line}\n" for line in lines))
    return text


def run_labels(runs: list[dict[str, Any]]) -> dict[str, str]:
    """Each run's legend entry: its folder and what it varies (`0: model=mlp`), not the folder alone."""
    return {r["run"]: f"{r['run']}: {o}" if o else r["run"] for r, o in zip(runs, varying(runs))}


def run_colours(runs: list[dict[str, Any]], budget_of: tuple[str, str] | None) -> tuple[dict[str, str], dict[str, str]]:
    """(run -> colour, legend entry -> colour): with by=KEY one colour per group, else one per run
    (named by what it varies); past MAX_LEGEND runs without groups, no legend (report.md names them)."""
    if budget_of is not None:
        groups = budget.group_by_key(runs, budget_of[0])
        legend = {f"{budget_of[0]}={value}": f"C{i % 10}" for i, value in enumerate(groups)}
        colour = {r["run"]: f"C{i % 10}" for i, members in enumerate(groups.values()) for r in members}
        return {r["run"]: colour.get(r["run"], "grey") for r in runs}, legend
    colour = {r["run"]: f"C{i % 10}" for i, r in enumerate(runs)}
    labels = run_labels(runs)
    return colour, ({labels[name]: c for name, c in colour.items()} if len(runs) <= MAX_LEGEND else {})


def plot(runs: list[dict[str, Any]], out: Path, budget_of: tuple[str, str] | None = None) -> bool:
    """One panel per curve (losses, eval metrics), one line per run (real data's score dashed beside each
    metric); where settings ran with several seeds, one more panel per final metric with every seed's
    score per setting; with by=KEY, the runs coloured by group, each group's final scores and its budget
    curve. False when there is nothing to draw."""
    from ganrun.data.pictures import pyplot  # torch and matplotlib load only when a plot is wanted

    plt = pyplot()
    curves = {r["run"]: scalars(r["dir"]) for r in runs}
    tags = [t for t in CURVES if any(t in c for c in curves.values())]
    tags += sorted({t for c in curves.values() for t in c if t.startswith("eval/")})
    colours, legend = run_colours(runs, budget_of)
    panels = [lambda ax, t=t: curve_panel(ax, t, curves, colours) for t in tags]
    if seeds.has_seeds(runs):
        panels += [lambda ax, m=m: seed_panel(ax, m, runs) for m in sorted({k for r in runs for k in r.get("metrics") or {}})]
    if budget_of is not None:
        panels += [lambda ax: group_panel(ax, runs, *budget_of), lambda ax: budget_panel(ax, runs, *budget_of)]
    if not panels:
        return False
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.5 * rows), squeeze=False)
    for ax, draw in zip(axes.flat, panels):
        draw(ax)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    if tags and legend:  # each run named by what it varies, or each group by its value
        fig.legend(handles=[plt.Line2D([], [], color=c, label=name) for name, c in legend.items()],
                   loc="upper right", fontsize="small")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def budget_panel(ax: Any, runs: list[dict[str, Any]], key: str, metric: str) -> None:
    """The best `metric` after k trials per value of `key`: the median over trial orders, 25-75% shaded."""
    for i, (value, curve) in enumerate(budget.curves(runs, key, metric).items()):
        k = range(1, len(curve) + 1)
        ax.plot(k, [c[0] for c in curve], marker="o", color=f"C{i % 10}", label=f"{key}={value}")
        ax.fill_between(k, [c[1] for c in curve], [c[2] for c in curve], color=f"C{i % 10}", alpha=0.2)
    log_scale(ax)
    ax.set_xlabel("trials")
    ax.set_title(f"best {metric} after k trials (median, 25-75%)")
    ax.legend(fontsize="small")


def curve_panel(ax: Any, tag: str, curves: dict[str, dict[str, Any]], colours: dict[str, str]) -> None:
    """One curve (a loss or an eval metric) against steps, one line per run, real data's score dashed."""
    for name, c in curves.items():
        if tag in c:
            steps, values = c[tag]
            ax.plot(steps, values, marker="o" if len(steps) < 3 else None, label=name, color=colours[name])
        floor = c.get(tag.replace("eval/", "eval_real/", 1))
        if floor:  # real data scored alike, dashed in the run's colour
            ax.plot(*floor, linestyle="--", color=colours[name], alpha=0.6)
    ax.set_title(tag)
    ax.set_xlabel("step")


def seed_panel(ax: Any, metric: str, runs: list[dict[str, Any]]) -> None:
    """Every seed's final `metric` per setting (a strip of dots), the mean and its 95% interval beside it."""
    groups = seeds.group_by_setting(runs)
    names = seeds.labels(groups)
    strips(ax, {names[k]: seeds.metric_values(members, metric) for k, members in groups.items()}, interval=True)
    ax.set_title(f"final {metric} per seed (mean, 95% interval)")


def group_panel(ax: Any, runs: list[dict[str, Any]], key: str, metric: str) -> None:
    """Every run's final `metric` per value of `key` (a strip of dots): the spread behind the budget curve."""
    groups = budget.group_by_key(runs, key)
    strips(ax, {f"{key}={v}": seeds.metric_values(members, metric) for v, members in groups.items()})
    log_scale(ax)
    ax.set_title(f"final {metric} of each run, by {key}")


def strips(ax: Any, groups: dict[str, list[float]], interval: bool = False) -> None:
    """One strip of dots per group (coloured as the group), with the mean and its t interval if asked."""
    for i, values in enumerate(groups.values()):
        if not values:
            continue
        jitter = [(j - (len(values) - 1) / 2) * 0.04 for j in range(len(values))]
        ax.plot([i + d for d in jitter], values, "o", color=f"C{i % 10}", alpha=0.7)
        if interval:
            est = seeds.mean_interval(values)
            ax.errorbar([i + 0.25], [est.mean], yerr=[[0 if est.n < 2 else est.half]], fmt="s", color="black",
                        capsize=4)
    ax.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right", fontsize="small")


def log_scale(ax: Any) -> None:
    """A log y axis where the values drawn span more than 20x (failed runs beside good ones), else linear."""
    ys = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
    if ys and max(ys) > 20 * min(ys):
        ax.set_yscale("log")


def main(args: list[str]) -> int:
    """Entry point for `ganrun report DIR [out=PREFIX]`; returns the exit code."""
    folders = [a for a in args if "=" not in a]
    options = dict(a.split("=", 1) for a in args if "=" in a)
    unknown = sorted(set(options) - {"dir", "out", "by", "metric", "ref"})
    if unknown or len(folders) + ("dir" in options) != 1:
        raise ConfigError("usage: ganrun report DIR [out=PREFIX] [by=KEY [metric=fd]] (DIR: a run, a sweep or "
                          "outputs/; by=KEY: budget curves of the runs grouped by override KEY, e.g. by=loss; ref=VALUE: the group "
                          "the others are compared with, e.g. ref=gan)")
    root = Path(folders[0] if folders else options["dir"])
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    header, body, runs = table_rows(root)
    if not runs:
        raise ConfigError(f"no ganrun runs under {root} (looked for */.hydra/overrides.yaml)")
    prefix = Path(options.get("out", root / "report"))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    budget_of = budget_choice(runs, options)
    md = space_tables(runs) + seed_section(runs) + budget_section(runs, budget_of, options.get("ref"))
    prefix.with_suffix(".md").write_text(f"# ganrun report: {root}\n\n{counted(runs)}\n\n" + md)
    with prefix.with_suffix(".csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *body])
    plotted = plot(runs, prefix.with_suffix(".png"), budget_of)
    print(md, end="")
    print(f"wrote {prefix.with_suffix('.md')}, {prefix.with_suffix('.csv')}"
          + (f", {prefix.with_suffix('.png')}" if plotted else " (no scalars logged yet: no plot)"))
    return 0
