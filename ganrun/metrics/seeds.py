"""Runs that differ only in their seed, as one setting: each metric's mean with a 95% confidence
interval, and which settings differ by more than the seed noise (torch-free: the sweep table and
`ganrun report` use it).

Intervals are Student t intervals: a setting's mean +- t(0.975, n-1) s / sqrt(n), and for two settings
Welch's interval of the difference of their means (unequal variances, Welch-Satterthwaite degrees of
freedom). Two settings differ beyond the noise when that interval excludes 0. GAN scores over seeds are
few and skewed, so with n = 3-5 these intervals are honest about being wide rather than exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Sequence

SEED = "train.seed"
LEVEL = 0.95
METHOD = "Student t, 95%"
DIFF_METHOD = "Welch t, 95%"


def is_seed(override: str) -> bool:
    """`train.seed=3` (and `+train.seed=3`, `++train.seed=3`): the override a seed sweep varies."""
    return override.lstrip("+").split("=", 1)[0] == SEED


def setting(overrides: Sequence[str]) -> tuple[str, ...]:
    """A run's overrides without its seed: the runs of one setting share it."""
    return tuple(o for o in overrides if not is_seed(o))


def feature_space(row: dict[str, Any]) -> str:
    """The feature space a run's metrics were measured in ("" for the protocols of toy sets)."""
    return str((row.get("metric_settings") or {}).get("feature_space", ""))


def group_by_setting(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Completed runs by setting and the feature space their metrics are in (`features=SPACE`, so runs scored
    in different spaces are never pooled), in the order each group first appears."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("status") == "completed":
            space = feature_space(r)
            key = setting(r.get("overrides", [])) + ((f"features={space}",) if space else ())
            groups.setdefault(key, []).append(r)
    return groups


def has_seeds(rows: list[dict[str, Any]]) -> bool:
    """True when some setting was run with two or more seeds: the grouped table has something to say."""
    return any(len(g) > 1 for g in group_by_setting(rows).values())


@dataclass(frozen=True)
class Estimate:
    """A mean over n seeds and the half-width of its confidence interval (nan for n = 1)."""

    mean: float
    half: float
    n: int

    def text(self) -> str:
        return f"{self.mean:.4g}" if math.isnan(self.half) else f"{self.mean:.4g} ± {self.half:.2g}"


def _t(level: float, df: float) -> float:
    """The two-sided `level` quantile of Student's t with df degrees of freedom."""
    from scipy import stats  # loaded only when some setting has seeds to pool

    return float(stats.t.ppf((1 + level) / 2, df))


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """The mean of `values` and the half-width of its Student t interval."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n < 2 or not math.isfinite(mean):  # one seed, or a seed that scored inf: no interval
        return Estimate(mean, math.nan, n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Estimate(mean, _t(level, n - 1) * sd / math.sqrt(n), n)


def difference_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): Welch's interval of the difference; each side needs 2+ values."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each setting needs two or more seeds")
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    diff, se = ma - mb, math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = _t(level, df) * se
    return diff, diff - half, diff + half


def metric_values(runs: list[dict[str, Any]], name: str) -> list[float]:
    """The final value of metric `name` of each run that has it."""
    return [float(r["metrics"][name]) for r in runs if name in (r.get("metrics") or {})]


def label(key: tuple[str, ...], common: set[str]) -> str:
    """A setting's name: its overrides minus those every setting shares."""
    return " ".join(o for o in key if o not in common) or "(defaults)"


def labels(groups: dict[tuple[str, ...], list[dict[str, Any]]]) -> dict[tuple[str, ...], str]:
    common = set.intersection(*(set(k) for k in groups)) if len(groups) > 1 else set()
    return {k: label(k, common) for k in groups}


def grouped_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(header, cells): one row per setting, each metric as mean ± half-width of its 95% interval, with n."""
    groups = group_by_setting(rows)
    names = labels(groups)
    metrics = sorted({k for r in rows for k in (r.get("metrics") or {})})
    header = ["setting", "n", *metrics]
    body = []
    for key, runs in groups.items():
        cells = [mean_interval(v).text() if (v := metric_values(runs, m)) else "-" for m in metrics]
        body.append([names[key], str(len(runs)), *cells])
    return header, body


def differences(rows: list[dict[str, Any]], level: float = LEVEL) -> list[str]:
    """For every metric and pair of settings with 2+ seeds each, scored in one feature space: the difference
    of their means with its Welch interval, and whether it is beyond the seed noise (the interval excludes 0)."""
    groups = {k: v for k, v in group_by_setting(rows).items() if len(v) > 1}
    names = labels(group_by_setting(rows))
    metrics = sorted({k for r in rows for k in (r.get("metrics") or {})})
    lines = []
    for m in metrics:
        for ka, kb in combinations(groups, 2):
            if feature_space(groups[ka][0]) != feature_space(groups[kb][0]):
                continue  # numbers in different feature spaces are not comparable
            a, b = metric_values(groups[ka], m), metric_values(groups[kb], m)
            if len(a) < 2 or len(b) < 2 or not all(map(math.isfinite, a + b)):
                continue  # an infinite score (a reverse KL with an empty mode) has no mean to compare
            diff, low, high = difference_interval(a, b, level)
            verdict = "differ" if low > 0 or high < 0 else "within the seed noise"
            lines.append(f"{m}: [{names[ka]}] - [{names[kb]}] = {diff:.4g} ({low:.4g} to {high:.4g}): {verdict}")
    return lines


def by_chance(pairs: list[str], level: float = LEVEL) -> str:
    """How many of these comparisons would read "differ" by chance alone if nothing differed: each
    interval misses a true zero with probability 1 - level, so many metrics compared find something."""
    return (f"{len(pairs)} comparisons at {level:.0%}: about {len(pairs) * (1 - level):.2g} would \"differ\" "
            "by chance alone where nothing does")
