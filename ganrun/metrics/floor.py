"""Scores beside the real-data floor, as text (torch-free: the sweep table and `ganrun report` use it): a
distance reads "61x real", the multiple of what real data scores at the same n."""

from __future__ import annotations

from typing import Any


DISTANCES = ("fd", "intra_fd")  # shown as a multiple of real data's own score at the same n (KID, unbiased, has a floor near 0)


def versus_real(name: str, value: float, floor: dict[str, float]) -> str:
    """" (27x real)" for a distance whose real-data floor is known (drs_ scores share their plain floor)."""
    real = floor.get(name.removeprefix("drs_"))
    return f" ({value / real:.1f}x real)" if real and name.removeprefix("drs_") in DISTANCES else ""


def metric_cell(row: dict[str, Any], name: str, missing: str = "-") -> str:
    """A run's final metric as table text, a distance followed by its multiple of the real-data floor."""
    value = row.get("metrics", {}).get(name)
    return missing if value is None else f"{value:.4g}" + versus_real(name, value, row.get("metrics_real", {}))
