"""The stall probe every service process runs (relaydesk/stalls.py): pure, no broker."""

import asyncio
import gc
import time

from prometheus_client import REGISTRY

from relaydesk.runtime import service_health
from relaydesk.settings import Settings
from relaydesk.stalls import (
    LOG_LAG_S,
    YOUNG_COLLECTION_AFTER,
    StallProbe,
    collect_young_less_often,
)


def _stall(seconds: float) -> None:
    """What a long callback does to the loop: nothing else runs meanwhile."""
    time.sleep(seconds)


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_blocked_loop_and_a_full_collection_are_both_measured() -> None:
    service = "stall-probe-test"
    late_before = _count("relaydesk_event_loop_lag_seconds_count", service=service) - _count(
        "relaydesk_event_loop_lag_seconds_bucket", service=service, le="0.1"
    )
    probe = StallProbe(service)
    probe.start()
    try:
        await asyncio.sleep(0)  # the probe's timer is armed
        gc.collect()
        _stall(LOG_LAG_S * 3)
        ticks = _count("relaydesk_event_loop_lag_seconds_count", service=service)
        while _count("relaydesk_event_loop_lag_seconds_count", service=service) == ticks:
            await asyncio.sleep(0.01)  # until the probe's timer has run after the stall
    finally:
        probe.stop()
    late = _count("relaydesk_event_loop_lag_seconds_count", service=service) - _count(
        "relaydesk_event_loop_lag_seconds_bucket", service=service, le="0.1"
    )
    assert late >= late_before + 1
    assert _count("relaydesk_gc_pause_seconds_count", service=service, generation="2") >= 1
    assert probe._on_gc not in gc.callbacks


def test_a_service_process_once_serving_leaves_its_start_up_heap_out_of_full_collections() -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        service_health("billing", Settings()).serving()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_COLLECTION_AFTER, *thresholds[1:])
    finally:
        gc.unfreeze()  # the test process goes on collecting as before
        gc.set_threshold(*thresholds)


def test_a_batch_of_short_lived_objects_no_longer_sets_off_young_collections() -> None:
    """What a service's reader does with a gulp of events: thousands of containers alive
    together, then all freed by reference counting."""
    thresholds = gc.get_threshold()

    def collections_during_batches() -> int:
        before = sum(generation["collections"] for generation in gc.get_stats())
        for _ in range(50):
            batch = [{"position": n, "data": {"n": n}} for n in range(5_000)]
            del batch
        return sum(generation["collections"] for generation in gc.get_stats()) - before

    try:
        gc.collect()
        default = collections_during_batches()
        collect_young_less_often()
        gc.collect()
        fewer = collections_during_batches()
    finally:
        gc.set_threshold(*thresholds)
    assert default >= 50  # at 700, every batch of 10,000 containers was collected in
    assert fewer == 0
