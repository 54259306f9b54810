"""Latency histograms and ratios.

Latencies are recorded in HDR histograms (``hdrhistogram``): microsecond resolution,
three significant digits, from 1 µs to an hour, constant memory however many messages a
round sends. Reported percentiles are the histogram's (the highest value equivalent to the
percentile's bucket, so within 0.1 % of the exact nearest-rank value), in milliseconds.
"""

import statistics
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS = 1, 3_600_000_000, 3
PERCENTILES = (("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0), ("p999_ms", 99.9))


class Latencies:
    """An HDR histogram of latencies, recorded in nanoseconds (as ``perf_counter_ns`` gives)."""

    def __init__(self) -> None:
        self._histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def record_ns(self, latency_ns: int) -> None:
        # Clamped into the histogram's range: a clock step must not lose a sample.
        self._histogram.record_value(min(HIGHEST_US, max(LOWEST_US, latency_ns // 1000)))

    def __len__(self) -> int:
        return int(self._histogram.get_total_count())

    def clear(self) -> None:
        self._histogram.reset()

    def summary(self) -> dict[str, Any]:
        """count, p50/p90/p99/p99.9 and max in milliseconds (``{"count": 0}`` when empty)."""
        if not len(self):
            return {"count": 0}
        histogram = self._histogram
        return {
            "count": len(self),
            **{
                key: round(histogram.get_value_at_percentile(p) / 1000, 3) for key, p in PERCENTILES
            },
            "max_ms": round(histogram.get_max_value() / 1000, 3),
        }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


def median_ratio(pairs: list[tuple[float | None, float | None]]) -> dict[str, float | None]:
    """Median, min and max of per-round ratios (rounds without both sides are skipped)."""
    values = [r for r in (ratio(a, b) for a, b in pairs) if r is not None]
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}
