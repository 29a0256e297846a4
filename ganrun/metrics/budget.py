"""Budget curves (Lucic et al. 2018, "Are GANs Created Equal?"): for each group of runs (a loss, say,
each run one trial of a random or Optuna search), the best score found after k trials, k = 1..n, with its
spread over the order the trials could have come in. "Which loss is better given k runs of tuning" is
then one plot. Torch-free: `ganrun report DIR by=KEY` uses it.

The spread is over random orderings of a group's trials (ORDERS of them, seeded): for each k, the median
and the 25th and 75th percentiles of the best of the first k. At k = n every ordering gives the group's
best, so the band closes there.
"""

from __future__ import annotations

import random
import statistics
from typing import Any, Sequence

ORDERS = 500
LOWER_IS_BETTER = ("fd", "intra_fd", "kid", "energy", "reverse_kl", "fid", "inception_fd", "inception_kid")


def best_after(values: Sequence[float], lower: bool = True, orders: int = ORDERS,
               seed: int = 0) -> list[tuple[float, float, float]]:
    """(median, 25th, 75th percentile) of the best of the first k trials, for k = 1..len(values), over
    random orderings of `values`."""
    if not values:
        return []
    rng = random.Random(seed)
    pick = min if lower else max
    runs = []
    for _ in range(orders):
        order = list(values)
        rng.shuffle(order)
        best, curve = order[0], []
        for v in order:
            best = pick(best, v)
            curve.append(best)
        runs.append(curve)
    out = []
    for k in range(len(values)):
        at_k = sorted(curve[k] for curve in runs)
        q = statistics.quantiles(at_k, n=4, method="inclusive") if len(at_k) > 1 else [at_k[0]] * 3
        out.append((statistics.median(at_k), q[0], q[2]))
    return out


def group_by_key(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    """Completed runs by their value of override `key` (`loss=hinge` -> "hinge"; "(default)" without it),
    in the order each value first appears."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("status") != "completed":
            continue
        values = [o.split("=", 1)[1] for o in r.get("overrides", []) if o.lstrip("+").split("=", 1)[0] == key]
        groups.setdefault(values[-1] if values else "(default)", []).append(r)
    return groups


def curves(rows: list[dict[str, Any]], key: str, metric: str) -> dict[str, list[tuple[float, float, float]]]:
    """Each group's budget curve of final `metric` (runs without it left out)."""
    lower = metric in LOWER_IS_BETTER
    out = {}
    for value, runs in group_by_key(rows, key).items():
        scores = [float(r["metrics"][metric]) for r in runs if metric in (r.get("metrics") or {})]
        if scores:
            out[value] = best_after(scores, lower)
    return out


def table(rows: list[dict[str, Any]], key: str, metric: str) -> tuple[list[str], list[list[str]]]:
    """(header, cells): per group, the best `metric` after 1, 2, 4, ... and all n trials, as
    median [25th-75th percentile] over trial orders."""
    found = curves(rows, key, metric)
    n_max = max((len(c) for c in found.values()), default=0)
    ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n_max} | {n_max}) if n_max else []
    header = [key, "trials", *(f"best of {k}" for k in ks)]
    body = []
    for value, curve in found.items():
        cells = [f"{curve[k - 1][0]:.4g} [{curve[k - 1][1]:.4g}-{curve[k - 1][2]:.4g}]" if k <= len(curve) else "-"
                 for k in ks]
        body.append([value, str(len(curve)), *cells])
    return header, body


DRAWS = 10_000
DIFF_METHOD = ("bootstrap over trials: both groups' trials resampled with replacement, the best of each, "
               "2.5th-97.5th percentile of the difference; Mann-Whitney U test of the two sets of trials")


def best_difference(a: Sequence[float], b: Sequence[float], lower: bool = True, draws: int = DRAWS,
                    seed: int = 0) -> tuple[float, float, float]:
    """best(a) - best(b) over all their trials, and the 95% bootstrap interval of that difference: how much
    of a gap between two groups' best runs is the luck of which trials were drawn."""
    rng = random.Random(seed)
    pick = min if lower else max
    diffs = sorted(pick(rng.choices(a, k=len(a))) - pick(rng.choices(b, k=len(b))) for _ in range(draws))
    return pick(a) - pick(b), diffs[int(0.025 * draws)], diffs[int(0.975 * draws) - 1]


def compared(rows: list[dict[str, Any]], key: str, metric: str, ref: str | None = None) -> tuple[str, list[str]]:
    """(the reference group, one line per other group): its best minus the reference's, the bootstrap
    interval, the U test's p, and whether the gap is beyond the luck of the draw. The reference is `ref`
    or, without it, the group with the best best."""
    from scipy.stats import mannwhitneyu

    lower = metric in LOWER_IS_BETTER
    scores = {v: [float(r["metrics"][metric]) for r in runs if metric in (r.get("metrics") or {})]
              for v, runs in group_by_key(rows, key).items()}
    scores = {v: s for v, s in scores.items() if s}
    if ref is None:
        ref = (min if lower else max)(scores, key=lambda v: (min if lower else max)(scores[v]))
    lines = []
    for value, s in scores.items():
        if value == ref or len(s) < 2 or len(scores[ref]) < 2:
            continue
        diff, low, high = best_difference(s, scores[ref], lower)
        better = (high < 0) if lower else (low > 0)
        worse = (low > 0) if lower else (high < 0)
        verdict = "better beyond the noise" if better else "worse beyond the noise" if worse else "within the noise"
        p = mannwhitneyu(s, scores[ref]).pvalue
        lines.append(f"{key}={value} - {key}={ref}: {diff:+.4g} [{low:+.4g}, {high:+.4g}], U test p={p:.2g}: {verdict}")
    return ref, lines
