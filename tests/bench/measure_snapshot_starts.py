"""Not part of the suite (not a ``test_`` module): times administration's and the
connectors' start on a long log, whole fold against snapshot + tail, on the test suite's
broker and store (docs/performance.md, "Administration's and the connectors' start from
their snapshots"). Run it by name:

    python -m pytest tests/bench/measure_snapshot_starts.py -p no:cacheprovider -q -s
"""

import time

from agent_service.admin.service import AdminService
from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.admin.admin_log import chat, opening
from tests.snapshot_store import without_store

ENTRIES = 200_000


async def publish_chat(bus: Bus, first: int, count: int) -> None:
    for start in range(first, first + count, 1000):
        await bus.publish_many([chat(n) for n in range(start, min(first + count, start + 1000))])


async def timed(service: AdminService | ConnectorsService, label: str) -> None:
    started = time.perf_counter()
    await service.start()
    took = time.perf_counter() - started
    restored, folded = service.restored_from, service.folded_at_start
    print(f"MEASURE {label}: {took:.2f} s, snapshot_position={restored}, folded={folded}")
    await service.stop()


async def test_measure(settings: Settings, bus: Bus) -> None:
    await bus.publish_many(opening())
    await publish_chat(bus, 0, ENTRIES)
    await timed(AdminService(without_store(settings)), "admin, no store, whole log")
    await timed(AdminService(settings), "admin, store, no snapshot yet")
    await publish_chat(bus, ENTRIES, 1000)
    await timed(AdminService(settings), "admin, from snapshot")
    connector_settings = settings.model_copy(update={"connectors_port": 0})
    await timed(ConnectorsService(connector_settings), "connectors, no snapshot yet")
    await publish_chat(bus, ENTRIES + 1000, 1000)
    await timed(ConnectorsService(connector_settings), "connectors, from snapshot")
