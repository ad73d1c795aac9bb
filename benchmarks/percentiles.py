"""The one percentile every benchmark reports, so their figures compare."""

from __future__ import annotations


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile (0–100), linear interpolation."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
