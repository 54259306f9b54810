"""Latency summaries and ratios. Latencies are kept in nanoseconds until they are reported."""

import statistics
from typing import Any


def summarize(latencies_ns: list[int]) -> dict[str, Any]:
    """p50/p90/p99/p99.9/max in milliseconds (nearest-rank percentiles)."""
    if not latencies_ns:
        return {"count": 0}
    ordered = sorted(latencies_ns)

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1e6, 3)

    return {
        "count": len(ordered),
        "p50_ms": rank(0.50),
        "p90_ms": rank(0.90),
        "p99_ms": rank(0.99),
        "p999_ms": rank(0.999),
        "max_ms": round(ordered[-1] / 1e6, 3),
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
