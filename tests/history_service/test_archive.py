"""The archive: every event once, with its position, chained per stream; tampering is found."""

from itertools import pairwise

from pymongo.asynchronous.database import AsyncDatabase

from contracts import Envelope
from contracts.events.audit import AuditCheckpoint
from history_service.hash_chain import GENESIS, verify_chain
from history_service.queries import HistoryQueries
from history_service.service import HistoryService
from relaydesk.bus import Bus
from tests.history_service.helpers import SYSTEM, conversation, event, settle


async def test_every_event_archived_once_with_position_and_envelope(
    history: HistoryService, bus: Bus, db: AsyncDatabase
) -> None:
    events = [e for cid in ("c1", "c2", "c3") for e in conversation("acme", cid, 6)]
    await bus.publish_many(events)
    await bus.publish_many(events[5:9])  # publisher retries that landed twice
    await settle(history, bus, db)
    chats = {"tenant": "acme", "type": {"$ne": AuditCheckpoint.TYPE}}  # history's own aside
    stored = [d async for d in db["events"].find(chats).sort("position", 1)]
    assert [d["_id"] for d in stored] == [e.id for e in events]  # log order, duplicates stored once
    positions = [d["position"] for d in stored]
    assert positions == sorted(set(positions))
    first = stored[0]
    assert (
        first["type"] == "conversation.requested"
        and first["stream"] == "conv:c1"
        and first["prev_hash"] == GENESIS
    )
    assert first["data"] == events[0].data and first["actor"] == {"kind": "customer", "id": "v1"}
    assert {"v", "occurred_at", "correlation_id", "causation_id", "hash"} <= set(first)


async def test_chain_verifies_and_first_tampered_link_is_reported(
    history: HistoryService, bus: Bus, db: AsyncDatabase
) -> None:
    events = conversation("acme", "c1", 5) + conversation("acme", "c2", 3)
    await bus.publish_many(events)
    await settle(history, bus, db)
    await settle(history, bus, db)  # the checkpoints signed after the closes are archived too
    whole = await verify_chain(db)
    signed = await db["events"].count_documents({"type": AuditCheckpoint.TYPE})
    assert signed >= 1
    assert whole["ok"] and whole["checked"] == len(events) + 2 + signed  # + the settle markers
    links = [d async for d in db["events"].find({"stream": "conv:c1"}).sort("position", 1)]
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in pairwise(links))

    tampered, later = events[4], events[6]
    await db["events"].update_one({"_id": later.id}, {"$set": {"data.body": "forged later"}})
    await db["events"].update_one({"_id": tampered.id}, {"$set": {"data.body": "forged"}})
    broken = await verify_chain(db, tenant="acme")
    original = next(d for d in links if d["_id"] == tampered.id)
    assert not broken["ok"] and broken["event_id"] == tampered.id and broken["stream"] == "conv:c1"
    assert (
        broken["position"] == original["position"]
        and broken["found_hash"] == original["hash"] != broken["expected_hash"]
    )
    assert (await verify_chain(db, stream="conv:c2"))["ok"]  # other chains are unaffected


async def test_a_removed_event_breaks_the_next_link(
    history: HistoryService, bus: Bus, db: AsyncDatabase
) -> None:
    events = conversation("acme", "c1", 4)
    await bus.publish_many(events)
    await settle(history, bus, db)
    await db["events"].delete_one({"_id": events[2].id})
    broken = await verify_chain(db, tenant="acme", stream="conv:c1")
    assert not broken["ok"] and broken["event_id"] == events[3].id


async def test_unknown_and_invalid_events_are_archived_but_not_folded(
    history: HistoryService, bus: Bus, db: AsyncDatabase
) -> None:
    unknown = event("acme", "c1", "conversation.teleported", {"where": "mars"}, SYSTEM)
    invalid = event("acme", "c1", "conversation.rated", {"score": 99}, SYSTEM)
    newer = Envelope(
        **{
            **event("acme", "c1", "conversation.closed", {"closed_by": "agent"}).model_dump(),
            "v": 9,
        }
    )
    bodiless = event("acme", "c1", "message.sent", {"message_id": "m-x", "author_kind": "agent"})
    events = conversation("acme", "c1", 2)
    await bus.publish_many([*events[:-1], unknown, invalid, bodiless, newer, events[-1]])
    await settle(history, bus, db)
    odd = [unknown.id, invalid.id, bodiless.id, newer.id]
    assert await db["events"].count_documents({"_id": {"$in": odd}}) == 4
    conv = await db["conversations"].find_one({"conversation_id": "c1"})
    assert (
        conv is not None
        and conv["status"] == "closed"
        and conv["rating"] is None
        and conv["message_count"] == 2
    )  # later events still applied
    # Messages are read from the archive: the invalid one is archived, never shown.
    shown = await HistoryQueries(db).messages_last({"tenant": "acme", "conversation_id": "c1"})
    assert [m["event"]["data"]["body"] for m in shown] == ["message 0", "message 1"]
