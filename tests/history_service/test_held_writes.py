"""Conversation writes held back while the log is busy (ReadModels, HistoryWriter): the
checkpoint stays below what is only in memory, so a crash loses nothing and counts nothing
twice. Against the store only, no broker: the writer is given batches as the log has them.
"""

import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
from beanie.odm.utils.dump import get_dict
from pymongo.asynchronous.database import AsyncDatabase

from contracts import Envelope
from contracts.envelope import LoggedEvent
from history_service.documents import HISTORY_DOCUMENTS, ConversationView
from history_service.read_models import ReadModels, stored_form
from history_service.writer import CONSUMER, HistoryWriter
from relaydesk.keys import KeyRing
from relaydesk.signing import Signer
from relaydesk.store import Checkpoint, bind_documents, bound, database, make_client
from tests.history_service.helpers import accepted, message, requested
from tests.servers import MongoServer

TENANT = "hold"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(mongo_server: MongoServer) -> AsyncIterator[AsyncDatabase]:
    client = make_client(mongo_server.url)
    store = database(client, f"t_{uuid.uuid4().hex[:12]}")
    await bind_documents(store, (*HISTORY_DOCUMENTS, Checkpoint))
    yield store
    await client.close()


def writer_on(db: AsyncDatabase, clock: Clock) -> HistoryWriter:
    writer = HistoryWriter(db, Signer(KeyRing(secrets.token_urlsafe(32))))
    writer.models = ReadModels(db, clock=clock)
    return writer


class Log:
    """Envelopes at consecutive positions, as a reader hands them out."""

    def __init__(self) -> None:
        self.entries: list[LoggedEvent] = []

    def append(self, *envelopes: Envelope) -> list[LoggedEvent]:
        start = len(self.entries)
        batch = [LoggedEvent(position=start + i, envelope=e) for i, e in enumerate(envelopes)]
        self.entries += batch
        return batch

    def after(self, checkpoint: int | None) -> list[LoggedEvent]:
        return [e for e in self.entries if checkpoint is None or e.position > checkpoint]


async def stored(db: AsyncDatabase, cid: str) -> dict:
    doc = await db["conversations"].find_one({"_id": f"{TENANT}|{cid}"})
    assert doc is not None
    return doc


async def test_a_busy_log_holds_message_only_writes_and_the_checkpoint_below_them(
    db: AsyncDatabase,
) -> None:
    clock, log = Clock(), Log()
    writer = writer_on(db, clock)
    await writer.apply(log.append(requested(TENANT, "a"), requested(TENANT, "b")), hold=True)
    assert (await stored(db, "a"))["message_count"] == 0  # new conversations: written at once

    busy = log.append(message(TENANT, "a", 0), message(TENANT, "b", 0), message(TENANT, "a", 1))
    await writer.apply(busy, hold=True)
    assert (await stored(db, "a"))["message_count"] == 0  # held
    assert await writer.checkpoints.load(CONSUMER) == busy[0].position - 1
    assert await db["events"].count_documents({}) == 5  # the archive is not held

    # a change other than messages is written with its batch, with what was held for it
    await writer.apply(log.append(accepted(TENANT, "a"), message(TENANT, "b", 1)), hold=True)
    a = await stored(db, "a")
    assert (a["status"], a["message_count"]) == ("engaged", 2)
    assert (await stored(db, "b"))["message_count"] == 0
    assert await writer.checkpoints.load(CONSUMER) == busy[1].position - 1  # b's first message

    clock.now += ReadModels.HOLD_S  # due: the next batch writes everything
    last = log.append(message(TENANT, "a", 2))
    await writer.apply(last, hold=True)
    assert [(await stored(db, c))["message_count"] for c in "ab"] == [3, 2]
    assert await writer.checkpoints.load(CONSUMER) == last[-1].position
    assert writer.models.unwritten_from is None


async def test_a_crash_with_held_writes_reads_them_again_and_counts_each_message_once(
    db: AsyncDatabase,
) -> None:
    clock, log = Clock(), Log()
    first = writer_on(db, clock)
    await first.apply(log.append(requested(TENANT, "a"), requested(TENANT, "b")))
    await first.apply(log.append(*(message(TENANT, "a", i) for i in range(3))), hold=True)
    await first.apply(log.append(accepted(TENANT, "b"), message(TENANT, "b", 0)), hold=True)
    # a publisher retry that landed twice: a later copy of a's first message
    copy = log.entries[2].envelope
    await first.apply(log.append(copy, message(TENANT, "a", 3)), hold=True)
    assert (await stored(db, "a"))["message_count"] == 0  # all of a's messages were held
    # crash: the first writer is gone with what it held; a new one starts at the checkpoint
    # and reads everything after it again (archived already), as the log reader does
    again = writer_on(db, Clock())
    checkpoint = await again.checkpoints.load(CONSUMER)
    assert checkpoint == 1
    await again.apply(log.after(checkpoint))
    a, b = await stored(db, "a"), await stored(db, "b")
    assert (a["message_count"], b["message_count"], b["status"]) == (4, 1, "engaged")
    assert await db["events"].count_documents({}) == len(log.entries) - 1  # the copy: not archived
    assert await again.checkpoints.load(CONSUMER) == log.entries[-1].position


async def test_a_quiet_log_writes_every_batch_at_once(db: AsyncDatabase) -> None:
    clock, log = Clock(), Log()
    writer = writer_on(db, clock)
    await writer.apply(log.append(requested(TENANT, "a")))
    await writer.apply(log.append(message(TENANT, "a", 0)), hold=True)
    assert (await stored(db, "a"))["message_count"] == 0
    await writer.apply(log.append(message(TENANT, "a", 1)))  # quiet: held ones go too
    assert (await stored(db, "a"))["message_count"] == 2
    assert await writer.checkpoints.load(CONSUMER) == 2


async def test_a_batch_of_many_conversations_and_ids_is_looked_up_whole(db: AsyncDatabase) -> None:
    """Lookups of a batch's ids and conversations go in runs (relaydesk.store.id_chunks):
    every run is asked, so copies and conversations past the first run are found too."""
    clock, log = Clock(), Log()
    writer = writer_on(db, clock)
    names = [f"c{n:03}" for n in range(100)]
    await writer.apply(log.append(*(requested(TENANT, name) for name in names)))
    firsts = log.append(*(message(TENANT, name, 0) for name in names))
    await writer.apply(firsts)
    # later copies of messages from every part of the batch, then one new message each
    copies = [firsts[n].envelope for n in (0, 40, 99)]
    await writer.apply(log.append(*copies, *(message(TENANT, name, 1) for name in names)))
    assert await db["events"].count_documents({}) == 300  # no copy archived
    counts = {(await stored(db, name))["message_count"] for name in names}
    assert counts == {2}  # every conversation loaded, folded once per message


async def conversation_queries(db: AsyncDatabase) -> int:
    top = await db.client.admin.command("top")
    return int(top["totals"].get(f"{db.name}.conversations", {}).get("queries", {}).get("count", 0))


async def test_conversations_it_wrote_are_folded_without_loading_them_again(
    db: AsyncDatabase,
) -> None:
    clock, log = Clock(), Log()
    writer = writer_on(db, clock)
    await writer.apply(log.append(requested(TENANT, "a"), requested(TENANT, "b")))
    before = await conversation_queries(db)
    await writer.apply(log.append(message(TENANT, "a", 0), accepted(TENANT, "b")))
    await writer.apply(log.append(message(TENANT, "b", 0), message(TENANT, "a", 1)))
    assert await conversation_queries(db) == before  # both known as last written
    assert [(await stored(db, cid))["message_count"] for cid in "ab"] == [2, 1]
    # a writer that starts afresh knows nothing: it loads them, and counts on from the store
    again, before = writer_on(db, clock), await conversation_queries(db)
    await again.apply(log.append(message(TENANT, "a", 2)))
    assert await conversation_queries(db) == before + 1
    assert (await stored(db, "a"))["message_count"] == 3


async def test_conversations_are_stored_as_beanie_stores_them(db: AsyncDatabase) -> None:
    """Written as raw requests (read_models.stored_form), read back through the model."""
    clock, log = Clock(), Log()
    writer = writer_on(db, clock)
    await writer.apply(log.append(requested(TENANT, "a"), accepted(TENANT, "a")))
    await writer.apply(log.append(message(TENANT, "a", 0)))
    model = await bound(db, ConversationView)
    loaded = await model.get(f"{TENANT}|a")
    assert loaded is not None
    assert (loaded.status, loaded.agent_id, loaded.message_count) == ("engaged", "ann", 1)
    assert loaded.visitor.email == "vic@example.com" and loaded.rating is None
    raw = await db["conversations"].find_one({"_id": f"{TENANT}|a"})
    assert raw == get_dict(loaded, to_db=True, keep_nulls=True)
    assert stored_form(loaded) == get_dict(loaded, to_db=True, keep_nulls=True)
