"""What stalls a service process: its event loop running late, and the garbage collector.

Everything a process does runs on one event loop; while one callback runs (or the
garbage collector walks the heap) every socket, publish and timer of the process waits.
Two measures, exported as metrics (relaydesk/metrics.py) and read per round by
``relaydesk bench``:

- **loop lag**: a timer asks to wake every ``TICK_S``; how late it wakes is how long
  the loop was busy with something else. A lag over ``LOG_LAG_S`` is logged with what
  the collector took meanwhile, so a stall can be told from plain CPU contention.
- **GC pauses**, per generation, timed by ``gc.callbacks`` around each collection.
"""

import asyncio
import gc
import time
from typing import Any

import structlog

from relaydesk.metrics import EVENT_LOOP_LAG_SECONDS, GC_PAUSE_SECONDS, series

log = structlog.get_logger(__name__)

TICK_S = 0.05
LOG_LAG_S = 0.1


def freeze_start_up() -> None:
    """Move everything alive now out of the collector's reach (``gc.freeze``).

    What a service built to start — imported modules, pydantic models and their
    validators, the state it folded from the log — lives as long as the process. Left in
    the oldest generation it is walked again by every full collection: 100,000–120,000
    objects in each service, a 200–800 ms pause each time under load (measured). Frozen
    objects are still freed by reference counting when they go; only a cycle among them
    would stay, and start-up state is not garbage.
    """
    gc.collect()
    gc.freeze()


# Net new container objects between two young collections (CPython's default: 700).
YOUNG_COLLECTION_AFTER = 20_000


def collect_young_less_often() -> None:
    """Run the young collection after ``YOUNG_COLLECTION_AFTER`` net new objects, not 700.

    A service handles events in batches (a reader's gulp, a chunk of the log), each holding
    a few thousand objects alive until it is done: at the default threshold the collector
    ran in the middle of nearly every batch, walked those objects, moved them to older
    generations and walked them again there, and their growth set off full collections.
    Under 1,500 msg/s that was 0.4–0.9 s of collector time a minute in each of the gateway,
    history, billing and the connectors (13 full collections a minute in history); after
    it, ~0.07 s in the gateway and next to nothing elsewhere, no full collection
    (docs/performance.md, "The young collection"). Most objects are freed by reference
    counting before the count is reached; the threshold bounds only cyclic garbage, a few
    MB at most.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, older, oldest)


class StallProbe:
    """Installed once per process by ``relaydesk.runtime.run_service``."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._gc_started = 0.0
        self._gc_s = 0.0  # collector time since the last tick
        self._gc_full = 0  # full (generation 2) collections since the last tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._tick())

    def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        generation = info.get("generation", 0)
        series(GC_PAUSE_SECONDS, self._service, str(generation)).observe(pause)
        self._gc_s += pause
        if generation == 2:
            self._gc_full += 1

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(TICK_S)
            lag = max(0.0, loop.time() - asked - TICK_S)
            series(EVENT_LOOP_LAG_SECONDS, self._service).observe(lag)
            if lag > LOG_LAG_S:
                log.warning(
                    "event_loop_late",
                    lag_ms=round(lag * 1000, 1),
                    gc_ms=round(self._gc_s * 1000, 1),
                    full_collections=self._gc_full,
                )
            self._gc_s, self._gc_full = 0.0, 0
