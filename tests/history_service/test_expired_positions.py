"""History behind by more than the log stream's retention: the gap is found and recorded.

The stream deletes its oldest segments after 30 days whether history read them or not. A
history stopped that long resumed at the oldest entry left and archived on as if nothing
were missing; ``audit verify`` then passed an archive without those events (nothing else
holds them). Now the reader reports the positions it was never handed
(relaydesk/bus/log_reader.py), history records them in the archive as
``history.events_expired`` before archiving past them, and verify reports them, for any
tenant it is asked about.

As in tests/foundation/test_log_retention.py, the log is created with a retention of
seconds and tiny segments, so filler events age the missed ones out while history is down.
"""

from contracts.events.history import EventsExpired
from history_service.service import SERVICE
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import marker_event
from relaydesk.keys import key_ring
from relaydesk.settings import Settings
from relaydesk.signing import Signer
from relaydesk.store import Checkpoints, database, make_client
from tests.admin.helpers import eventually
from tests.conftest import bus_on
from tests.foundation.test_log_retention import first_retained, short_lived_log
from tests.history_service.helpers import conversation, running, settle
from tools.replay.verify import verify_online

TENANT = "acme"


async def aged_out(bus: Bus, position: int) -> None:
    """Publish filler until the stream no longer holds ``position``."""

    async def gone() -> bool:
        await bus.publish(marker_event("filler"))
        return await first_retained(bus) > position

    await eventually(gone, timeout=60, what=f"position {position} aged out of the stream")


async def test_positions_deleted_before_history_read_them_are_recorded_and_fail_verify(
    settings: Settings,
) -> None:
    await short_lived_log(settings)
    client = make_client(settings.mongo_url or "")
    db = database(client, settings.mongo_db)
    try:
        async with bus_on(settings) as bus:
            for envelope in conversation(TENANT, "c1", 2):
                await bus.publish(envelope)
            async with running(settings) as service:
                await settle(service, bus, db)
            resumes_at = await Checkpoints(db).load(SERVICE) + 1  # where history will go on
            # history is down: a conversation it will never see, then the stream drops it
            for envelope in conversation(TENANT, "c2", 3):
                await bus.publish(envelope)
            await aged_out(bus, resumes_at)

            # Any reader resuming from a deleted position is told what it was not handed.
            async with LogReader(bus, start=resumes_at, name="probe") as reader:
                async for batch in reader.batches(idle_timeout=5):
                    assert reader.take_expired() == [(resumes_at, batch[0].position - 1)]
                    break

            async with running(settings) as service:
                await settle(service, bus, db)
        records = [r async for r in db["events"].find({"type": EventsExpired.TYPE})]
        assert len(records) == 1
        gap = records[0]["data"]
        first, last = gap["first_position"], gap["last_position"]
        assert first == resumes_at
        assert await db["events"].count_documents({"position": {"$gte": first, "$lte": last}}) == 0
        assert await db["events"].count_documents({"stream": "conv:c2"}) == 0
        assert await db["events"].find_one({"position": last + 1}) is not None  # resumed there

        keys = Signer(key_ring(settings, "audit_signing_key")).public_keys
        for tenant in (None, TENANT):  # the whole archive, and one tenant's share of it
            verdict = await verify_online(settings, tenant, None, keys)
            expired = [f for f in verdict.findings if f.kind == "expired"]
            assert [(f.position, str(last) in f.detail) for f in expired] == [(first, True)]
    finally:
        await client.close()
