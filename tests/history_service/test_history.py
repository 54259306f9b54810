"""history_service on real RabbitMQ + MongoDB protocol: archive, read models, restart, hash chain."""

import asyncio

from contracts import Actor, Envelope
from history_service.hash_chain import verify_chain
from history_service.service import HistoryService
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.settings import Settings
from relaydesk.store import database, make_client

CUSTOMER = Actor(kind="customer", id="v1")
AGENT = Actor(kind="agent", id="ann")


def conversation(tenant: str, cid: str, messages: int) -> list[Envelope]:
    stream = f"conv:{cid}"
    events = [
        Envelope(type="conversation.requested", tenant=tenant, stream=stream, actor=CUSTOMER, data={"conversation_id": cid, "visitor": {"id": "v1", "name": "Vic"}}),
        Envelope(type="conversation.accepted", tenant=tenant, stream=stream, actor=AGENT, data={"conversation_id": cid, "agent_id": "ann"}),
    ]
    for i in range(messages):
        author = CUSTOMER if i % 2 == 0 else AGENT
        events.append(Envelope(type="message.sent", v=2, tenant=tenant, stream=stream, actor=author, data={"conversation_id": cid, "message_id": f"{cid}-m{i}", "body": f"message {i}", "author_kind": author.kind.value, "author_id": author.id}))
    events.append(Envelope(type="typing.changed", tenant=tenant, stream=stream, actor=CUSTOMER, data={"conversation_id": cid, "who_kind": "customer", "who_id": "v1", "typing": True}))
    events.append(Envelope(type="conversation.closed", tenant=tenant, stream=stream, actor=AGENT, data={"conversation_id": cid, "closed_by": "agent"}))
    return events


async def settle(service: HistoryService, bus: Bus) -> None:
    """Publish a marker and wait until the service archived it: everything before is in."""
    from relaydesk.bus.catch_up import marker_event

    marker = marker_event("test")
    await bus.publish(marker)
    db = database(make_client(service.settings.mongo_url or ""), service.settings.mongo_db)
    async with asyncio.timeout(20):
        while (doc := await db["events"].find_one({"_id": marker.id})) is None:
            await asyncio.sleep(0.05)
    await service.wait_for_position(doc["position"])


async def test_archive_read_models_and_queries(settings: Settings, bus: Bus) -> None:
    service = HistoryService(settings)
    await service.start()
    try:
        events = conversation("acme", "c1", 6)
        await bus.publish_many(events)
        await bus.publish(events[3])  # a publisher retry that landed twice
        await settle(service, bus)
        rpc = RpcClient(bus)
        last = await rpc.query("history", "messages.last", {"tenant": "acme", "conversation_id": "c1", "limit": 4})
        assert [m["event"]["data"]["body"] for m in last] == ["message 2", "message 3", "message 4", "message 5"]
        older = await rpc.query("history", "messages.last", {"tenant": "acme", "conversation_id": "c1", "limit": 10, "before_position": last[0]["position"]})
        assert [m["event"]["data"]["body"] for m in older] == ["message 0", "message 1"]
        [conv] = await rpc.query("history", "conversations.list", {"tenant": "acme", "view": "closed"})
        assert conv["conversation_id"] == "c1" and conv["agent_id"] == "ann" and conv["message_count"] == 6
        assert await rpc.query("history", "conversations.list", {"tenant": "globex", "view": "all"}) == []
        transcript = await rpc.query("history", "transcript", {"tenant": "acme", "conversation_id": "c1"})
        assert len(transcript["events"]) == len(events)  # the duplicate is archived once
        db = database(make_client(settings.mongo_url or ""), settings.mongo_db)
        assert await db["events"].count_documents({"tenant": "acme"}) == len(events)
        assert (await verify_chain(db))["ok"]
        await db["events"].update_one({"_id": events[4].id}, {"$set": {"data.body": "forged"}})
        broken = await verify_chain(db, tenant="acme")
        assert not broken["ok"] and broken["event_id"] == events[4].id
    finally:
        await service.stop()


async def read_model(settings: Settings) -> tuple[list, list]:
    db = database(make_client(settings.mongo_url or ""), settings.mongo_db)
    conversations = [d async for d in db["conversations"].find({}, {"updated_position": 0, "last_position": 0}).sort("_id", 1)]
    messages = [(d["_id"], d["position"]) async for d in db["messages"].find({}).sort("position", 1)]
    return conversations, messages


async def test_restart_mid_stream_gives_the_same_read_model(settings: Settings, bus: Bus) -> None:
    events = [e for i in range(8) for e in conversation("acme", f"c{i}", 5)]
    first_half, second_half = events[: len(events) // 2], events[len(events) // 2 :]
    interrupted = HistoryService(settings)
    await interrupted.start()
    await bus.publish_many(first_half)
    await settle(interrupted, bus)
    interrupted._task.cancel()  # type: ignore[union-attr]  # abrupt: no clean shutdown
    await interrupted.stop()
    await bus.publish_many(second_half)
    restarted = HistoryService(settings)
    await restarted.start()
    await settle(restarted, bus)
    await restarted.stop()

    reference_settings = settings.model_copy(update={"mongo_db": settings.mongo_db + "_ref"})
    uninterrupted = HistoryService(reference_settings)
    await uninterrupted.start()
    await settle(uninterrupted, bus)
    await uninterrupted.stop()
    assert await read_model(settings) == await read_model(reference_settings)
    conversations, messages = await read_model(settings)
    assert len(conversations) == 8 and len(messages) == 40
