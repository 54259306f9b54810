"""Crashes and restarts neither lose nor repeat: the read model equals an uninterrupted run."""

import asyncio

from pymongo.asynchronous.database import AsyncDatabase

from contracts.events.audit import AuditCheckpoint
from history_service.hash_chain import verify_chain
from history_service.queries import HistoryQueries
from history_service.service import HistoryService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from relaydesk.store import Checkpoints, database, make_client
from tests.history_service.helpers import conversation, running, settle

VOLATILE = {"_id": 0}


async def snapshot(db: AsyncDatabase) -> tuple[list, list, list]:
    """Read models and archive minus nothing that should differ between two runs."""
    conversations = [
        d async for d in db["conversations"].find({}, VOLATILE).sort("conversation_id", 1)
    ]
    queries = HistoryQueries(db)
    messages = [
        message
        for c in conversations
        for message in await queries.messages_last(
            {"tenant": "acme", "conversation_id": c["conversation_id"], "limit": 500}
        )
    ]
    archive = [
        (d["_id"], d["position"], d["hash"])
        # history's own checkpoints (their own chain) say when each run signed: not compared
        async for d in db["events"]
        .find({"tenant": "acme", "type": {"$ne": AuditCheckpoint.TYPE}})
        .sort("position", 1)
    ]
    return conversations, messages, archive


async def reference_run(settings: Settings, bus: Bus) -> tuple[list, list, list]:
    """The same log folded by a fresh service into its own database, never interrupted."""
    reference = settings.model_copy(update={"mongo_db": settings.mongo_db + "_ref"})
    client = make_client(settings.mongo_url or "")
    try:
        db = database(client, reference.mongo_db)
        async with running(reference) as service:
            await settle(service, bus, db)
        return await snapshot(db)
    finally:
        await client.close()


async def crash(service: HistoryService) -> None:
    """Abrupt stop: the follower task is cancelled wherever it is, nothing is flushed."""
    assert service._task is not None
    service._task.cancel()
    await asyncio.gather(service._task, return_exceptions=True)
    await service.stop()  # only releases the connections


async def test_abrupt_stop_mid_stream_then_restart(
    settings: Settings, bus: Bus, db: AsyncDatabase
) -> None:
    events = [e for i in range(8) for e in conversation("acme", f"c{i}", 5)]
    interrupted = HistoryService(settings, batch_size=3)  # many batches: the crash lands mid-stream
    await interrupted.start()
    await bus.publish_many(events[:40])
    async with asyncio.timeout(20):
        while (interrupted.position or -1) < 20:
            await asyncio.sleep(0.01)  # polling a condition under a deadline
    await crash(interrupted)  # somewhere in the middle of the first 40
    assert interrupted.position is not None and interrupted.position < 39
    await bus.publish_many(events[40:])
    async with running(settings) as restarted:
        await settle(restarted, bus, db)
    ours = await snapshot(db)
    assert ours == await reference_run(settings, bus)
    assert len(ours[0]) == 8 and len(ours[1]) == 40 and len(ours[2]) == len(events)
    assert (await verify_chain(db))["ok"]


async def test_crash_after_read_models_before_archive_is_idempotent(
    settings: Settings, bus: Bus, db: AsyncDatabase
) -> None:
    events = [e for i in range(4) for e in conversation("acme", f"c{i}", 4)]
    await bus.publish_many(events)
    async with running(settings) as first:
        await settle(first, bus, db)
    # Recreate the state a crash leaves between the read-model writes and the archive
    # write: read models hold the whole batch, archive and checkpoint only its start.
    cut = (await db["events"].find_one({"_id": events[10].id}))["position"]
    await db["events"].delete_many({"position": {"$gte": cut}})
    await db["checkpoints"].replace_one({"_id": "history"}, {"position": cut - 1})
    assert await Checkpoints(db).load("history") == cut - 1
    async with running(settings) as again:
        await settle(again, bus, db)
    ours = await snapshot(db)
    assert ours == await reference_run(settings, bus)
    assert sum(c["message_count"] for c in ours[0]) == 16 and len(ours[1]) == 16
    assert (await verify_chain(db))["ok"]
