"""Medians, minima and maxima of repeated measurements."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """The median, min and max of ``n`` samples (in the unit they were taken in)."""

    median: float
    min: float
    max: float
    n: int

    def as_json(self, digits: int = 2) -> dict[str, float | int]:
        return {
            "median": round(self.median, digits),
            "min": round(self.min, digits),
            "max": round(self.max, digits),
            "n": self.n,
        }

    def scaled(self, factor: float) -> Summary:
        """The same summary in another unit (e.g. seconds -> milliseconds)."""
        return Summary(self.median * factor, self.min * factor, self.max * factor, self.n)


def summarize(samples: Iterable[float]) -> Summary:
    values = list(samples)
    if not values:
        raise ValueError("no samples")
    return Summary(statistics.median(values), min(values), max(values), len(values))


def summarize_ms(seconds: Iterable[float]) -> Summary:
    """Seconds in, milliseconds out."""
    return summarize(seconds).scaled(1000.0)
