"""How much each service stalled during a round, from its own ``/metrics`` (relaydesk/stalls.py).

A latency tail that grows while CPU per message stays flat is a process stopping, not
one working harder; the report says which: per process, its event loop's worst lag in the
round (the upper bound of the histogram bucket it fell in), how many 50 ms ticks came
over 100 ms late, and the full garbage collections with their total pause.
"""

import gc
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from relaydesk.health import SERVICE_ORDER

LAG = "relaydesk_event_loop_lag_seconds"
GC = "relaydesk_gc_pause_seconds"
LATE_S = "0.1"  # a bucket bound of relaydesk.metrics.STALL_BUCKETS

Sample = dict[str, dict[tuple[str, str, str], float]]  # service -> (sample, generation, le)


class StallMeter:
    """Reads every service's stall metrics; ``between`` turns two readings into a round's figures.

    Args:
        health_port_base: ``RELAYDESK_HEALTH_PORT_BASE`` of the system under test.
    """

    def __init__(self, health_port_base: int, host: str = "127.0.0.1") -> None:
        self._urls = {
            name: f"http://{host}:{health_port_base + index}/metrics"
            for index, name in enumerate(SERVICE_ORDER)
        }

    async def sample(self) -> Sample:
        readings: Sample = {}
        async with httpx.AsyncClient(timeout=5) as http:
            for name, url in self._urls.items():
                try:
                    text = (await http.get(url)).text
                except httpx.HTTPError:
                    continue  # a process restarting: no figure for it this round
                readings[name] = {
                    _key(sample.name, sample.labels): sample.value
                    for family in text_string_to_metric_families(text)
                    if family.name in (LAG, GC)
                    for sample in family.samples
                }
        return readings

    @staticmethod
    def between(before: Sample, after: Sample) -> dict[str, dict[str, Any]]:
        figures = {}
        for name, now in after.items():
            then = before.get(name, {})
            delta = {key: value - then.get(key, 0.0) for key, value in now.items()}
            ticks = delta.get((f"{LAG}_count", "", ""), 0.0)
            buckets = sorted(
                (float(le), count)
                for (sample, _, le), count in delta.items()
                if sample == f"{LAG}_bucket"
            )
            # the smallest bound holding every tick of the round: the worst lag was below it
            worst = next((bound for bound, count in buckets if count >= ticks), None)
            figures[name] = {
                "max_loop_lag_s": worst,
                "ticks_late_over_100ms": round(ticks - delta.get((f"{LAG}_bucket", "", LATE_S), 0)),
                "full_collections": round(delta.get((f"{GC}_count", "2", ""), 0)),
                "full_collection_pause_ms": round(delta.get((f"{GC}_sum", "2", ""), 0) * 1000, 1),
                "gc_pause_ms": round(
                    sum(v for (s, _, _), v in delta.items() if s == f"{GC}_sum") * 1000, 1
                ),
            }
        return figures


def _key(sample: str, labels: dict[str, str]) -> tuple[str, str, str]:
    return sample, labels.get("generation", ""), labels.get("le", "")


class OwnCollections:
    """The load generator's own garbage collections: it is a Python process too, and while it
    collects, the messages it receives wait and are measured as latency. Counted from
    ``gc.callbacks``; ``between`` gives a round's figures in the shape of a service's."""

    def __init__(self) -> None:
        self._count = [0, 0, 0]
        self._pause_s = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self._count[generation] += 1
        self._pause_s[generation] += time.perf_counter() - self._started

    def sample(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        return tuple(self._count), tuple(self._pause_s)

    @staticmethod
    def between(
        before: tuple[tuple[int, ...], tuple[float, ...]],
        after: tuple[tuple[int, ...], tuple[float, ...]],
    ) -> dict[str, Any]:
        (count_then, pause_then), (count_now, pause_now) = before, after
        return {
            "max_loop_lag_s": None,  # the generator's own lateness is generator_behind_max_ms
            "full_collections": count_now[2] - count_then[2],
            "full_collection_pause_ms": round((pause_now[2] - pause_then[2]) * 1000, 1),
            "gc_pause_ms": round((sum(pause_now) - sum(pause_then)) * 1000, 1),
        }

    def close(self) -> None:
        gc.callbacks.remove(self._on_collection)
