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
