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

import pytest
from pymongo.asynchronous.database import AsyncDatabase

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


async def archived_through(db: AsyncDatabase) -> int:
    newest = await db["events"].find_one({}, sort=[("position", -1)])
    assert newest is not None
    return int(newest["position"])


async def miss_and_resume(settings: Settings, db: AsyncDatabase, *, checkpoint_behind: bool) -> int:
    """History archives c1 and stops; c2 is published and aged out while it is down; it
    starts again. ``checkpoint_behind``: its stop is taken as a crash between a batch's
    archive and its checkpoint (the checkpoint one below the archive). Returns the first
    position history never read."""
    async with bus_on(settings) as bus:
        for envelope in conversation(TENANT, "c1", 2):
            await bus.publish(envelope)
        async with running(settings) as service:
            await settle(service, bus, db)
        # Everything archived was read. A stop may also leave the checkpoint below the last
        # batch (cancelled between the two writes, as a crash would): history resumes there.
        never_read = await archived_through(db) + 1
        if checkpoint_behind:
            below = {"$set": {"position": never_read - 2}}
            await db["checkpoints"].update_one({"_id": SERVICE}, below)
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
    return never_read


async def assert_gap_recorded(settings: Settings, db: AsyncDatabase, never_read: int) -> None:
    """One ``history.events_expired`` record, from the first position never read, holding
    nothing archived; archiving resumed after it; verify reports it, for the whole archive
    and for the tenant."""
    records = [r async for r in db["events"].find({"type": EventsExpired.TYPE})]
    assert len(records) == 1
    gap = records[0]["data"]
    first, last = gap["first_position"], gap["last_position"]
    assert first == never_read
    in_gap = [
        (doc["position"], doc["type"], doc["stream"])
        async for doc in db["events"].find({"position": {"$gte": first, "$lte": last}})
    ]
    assert in_gap == [], f"archived inside the recorded gap {first}..{last}: {in_gap}"
    assert await db["events"].count_documents({"stream": "conv:c2"}) == 0
    assert await db["events"].find_one({"position": last + 1}) is not None  # resumed there

    keys = Signer(key_ring(settings, "audit_signing_key")).public_keys
    for tenant in (None, TENANT):  # the whole archive, and one tenant's share of it
        verdict = await verify_online(settings, tenant, None, keys)
        expired = [f for f in verdict.findings if f.kind == "expired"]
        assert [(f.position, str(last) in f.detail) for f in expired] == [(first, True)]


@pytest.mark.parametrize(
    "checkpoint_behind",
    [
        False,
        # A stop between a batch's archive and its checkpoint (the follower cancelled there,
        # or a crash) leaves the checkpoint below events that are archived. The reader
        # reports the gap from the checkpoint; history recorded all of it, so the archive
        # held an event its own record called lost (seen in CI: an audit checkpoint
        # published just before the stop).
        True,
    ],
    ids=["checkpoint-at-archive", "batch-archived-above-checkpoint"],
)
async def test_positions_deleted_before_history_read_them_are_recorded_and_fail_verify(
    settings: Settings, checkpoint_behind: bool
) -> None:
    await short_lived_log(settings)
    client = make_client(settings.mongo_url or "")
    db = database(client, settings.mongo_db)
    try:
        never_read = await miss_and_resume(settings, db, checkpoint_behind=checkpoint_behind)
        await assert_gap_recorded(settings, db, never_read)
    finally:
        await client.close()
