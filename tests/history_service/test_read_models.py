"""Read models and the queries the gateway asks."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from history_service.service import HistoryService
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RemoteError, RpcClient
from tests.history_service.helpers import (
    AGENT,
    CUSTOMER,
    SYSTEM,
    accepted,
    conversation,
    event,
    message,
    requested,
    settle,
)


def full_conversation(tenant: str, cid: str) -> list:
    attachment = {
        "message_id": f"{cid}-a",
        "attachment_id": "att1",
        "filename": "x.png",
        "content_type": "image/png",
        "size": 10,
        "author_kind": "customer",
        "author_id": "v1",
    }
    return [
        requested(tenant, cid),
        event(tenant, cid, "conversation.queued", {"position": 0}),
        event(tenant, cid, "conversation.offered", {"agent_ids": ["ann", "bob"]}),
        accepted(tenant, cid),
        event(
            tenant,
            cid,
            "message.system",
            {"message_id": f"{cid}-s", "kind": "joined", "text": "Ann joined"},
        ),
        message(tenant, cid, 0),
        event(tenant, cid, "message.attachment_sent", attachment, CUSTOMER),
        event(
            tenant,
            cid,
            "typing.changed",
            {"who_kind": "agent", "who_id": "ann", "typing": True},
            AGENT,
        ),
        event(
            tenant,
            cid,
            "message.read",
            {"message_id": f"{cid}-m0", "reader_kind": "agent", "reader_id": "ann"},
            AGENT,
        ),
        message(tenant, cid, 1),
        event(tenant, cid, "conversation.closed", {"closed_by": "customer"}, CUSTOMER),
        event(tenant, cid, "conversation.rated", {"score": 4, "comment": "quick"}, CUSTOMER),
    ]


async def test_full_conversation_read_model(
    history: HistoryService, bus: Bus, db: AsyncDatabase, rpc: RpcClient
) -> None:
    events = full_conversation("acme", "c1")
    await bus.publish_many(events)
    await settle(history, bus, db)
    conv = await rpc.query(
        "history", "conversation.get", {"tenant": "acme", "conversation_id": "c1"}
    )
    assert (
        conv["status"] == "closed"
        and conv["agent_id"] == "ann"
        and conv["channel"] == "web"
        and conv["department"] == "sales"
    )
    assert conv["visitor"] == {
        "id": "v1",
        "name": "Vic",
        "email": "vic@example.com",
        "page_url": "https://shop.example/cart",
        "avatar_attachment_id": None,  # a messaging platform's profile picture; none on the web
    }
    assert conv["message_count"] == 3 and conv["rating"] == {"score": 4, "comment": "quick"}
    assert conv["created_at"] <= conv["accepted_at"] <= conv["last_message_at"] <= conv["closed_at"]
    shown = await rpc.query("history", "messages.last", {"tenant": "acme", "conversation_id": "c1"})
    assert [m["event"]["type"] for m in shown] == [
        "message.system",
        "message.sent",
        "message.attachment_sent",
        "message.sent",
    ]
    assert [m["event"]["id"] for m in shown] == [
        e.id for e in events if e.type.startswith("message.") and e.type != "message.read"
    ]
    # Served from the archive: no per-message read-model row is written (a third document
    # per chat message, docs/performance.md).
    assert "messages" not in await db.list_collection_names()
    transcript = await rpc.query(
        "history", "transcript", {"tenant": "acme", "conversation_id": "c1"}
    )
    assert transcript["conversation"]["conversation_id"] == "c1" and [
        e["id"] for e in transcript["events"]
    ] == [e.id for e in events]


async def test_messages_last_and_scroll_back(
    history: HistoryService, bus: Bus, db: AsyncDatabase, rpc: RpcClient
) -> None:
    events = conversation("acme", "c1", 7)
    await bus.publish_many(events)
    await settle(history, bus, db)
    last = await rpc.query(
        "history", "messages.last", {"tenant": "acme", "conversation_id": "c1", "limit": 3}
    )
    assert [m["event"]["data"]["body"] for m in last] == ["message 4", "message 5", "message 6"]
    assert last[0]["event"] == events[6].model_dump(mode="json")  # the envelope, as published
    older = await rpc.query(
        "history",
        "messages.last",
        {
            "tenant": "acme",
            "conversation_id": "c1",
            "limit": 3,
            "before_position": last[0]["position"],
        },
    )
    assert [m["event"]["data"]["body"] for m in older] == ["message 1", "message 2", "message 3"]
    oldest = await rpc.query(
        "history",
        "messages.last",
        {
            "tenant": "acme",
            "conversation_id": "c1",
            "limit": 3,
            "before_position": older[0]["position"],
        },
    )
    assert [m["event"]["data"]["body"] for m in oldest] == ["message 0"]


async def test_messages_last_waits_for_the_position_the_asker_has_seen(
    history: HistoryService, bus: Bus, db: AsyncDatabase, rpc: RpcClient
) -> None:
    # A console opening a chat has seen the log up to its socket's position; the read model
    # may be behind it. Asked "up to" a position, the answer comes once history holds it.
    before = await settle(history, bus, db)
    events = conversation("acme", "c1", 7)
    asked = asyncio.create_task(
        rpc.query(
            "history",
            "messages.last",
            {"tenant": "acme", "conversation_id": "c1", "upto_position": before + len(events)},
        )
    )
    await bus.publish_many(events)
    assert [m["event"]["data"]["body"] for m in await asked] == [f"message {i}" for i in range(7)]
    # Not there after the wait: "behind" (ask again), never an answer that looks complete.
    with pytest.raises(RemoteError) as refused:
        await rpc.query(
            "history",
            "messages.last",
            {"tenant": "acme", "conversation_id": "c1", "upto_position": before + 1000},
        )
    assert refused.value.code == "behind"


async def test_a_transcript_waits_for_the_position_the_asker_has_seen(
    history: HistoryService, bus: Bus, db: AsyncDatabase, rpc: RpcClient
) -> None:
    # An auditor's timeline opened right after an accept lacked the accept: the archive lags
    # the log. Asked "up to" what the gateway has seen, it answers once the archive has it.
    before = await settle(history, bus, db)
    events = conversation("acme", "c1", 3)
    asked = asyncio.create_task(
        rpc.query(
            "history",
            "transcript",
            {"tenant": "acme", "conversation_id": "c1", "upto_position": before + len(events)},
        )
    )
    await bus.publish_many(events)
    assert [e["id"] for e in (await asked)["events"]] == [e.id for e in events]
    with pytest.raises(RemoteError) as refused:
        await rpc.query(
            "history",
            "transcript",
            {"tenant": "acme", "conversation_id": "c1", "upto_position": before + 1000},
        )
    assert refused.value.code == "behind"


async def test_list_views_and_visitor_filter(
    history: HistoryService, bus: Bus, db: AsyncDatabase, rpc: RpcClient
) -> None:
    events = [
        requested("acme", "waiting"),
        event("acme", "waiting", "conversation.queued", {"position": 0}),
        requested("acme", "offered", visitor_id="v2"),
        event("acme", "offered", "conversation.offered", {"agent_ids": ["ann"]}),
        requested("acme", "mine"),
        accepted("acme", "mine", "ann"),
        requested("acme", "bobs"),
        accepted("acme", "bobs", "bob"),
        requested("acme", "missed"),
        event("acme", "missed", "conversation.missed", {}),
        *conversation("acme", "done", 1),
        requested("acme", "moved"),
        accepted("acme", "moved", "bob"),
        event(
            "acme",
            "moved",
            "conversation.transferred",
            {"from_agent_id": "bob", "to_agent_id": "ann"},
            SYSTEM,
        ),
    ]
    await bus.publish_many(events)
    await settle(history, bus, db)

    async def view(name: str, **extra: str) -> list[str]:
        items = await rpc.query(
            "history",
            "conversations.list",
            {"tenant": "acme", "view": name, "agent_id": "ann", "limit": 50, **extra},
        )
        assert all({"conversation_id", "status"} <= set(item) for item in items)
        return [item["conversation_id"] for item in items]

    assert await view("mine") == ["moved", "mine"]  # newest first
    assert await view("queued") == ["offered", "waiting"]
    assert await view("missed") == ["missed"]
    assert await view("closed") == ["done"]
    assert await view("all") == ["moved", "done", "missed", "bobs", "mine", "offered", "waiting"]
    assert await view("all", visitor_id="v2") == ["offered"]
    with pytest.raises(RemoteError) as bad:
        await view("everything")
    assert bad.value.code == "bad_request"


async def test_other_tenants_see_nothing(
    history: HistoryService, bus: Bus, db: AsyncDatabase, rpc: RpcClient
) -> None:
    await bus.publish_many(conversation("acme", "c1", 3))
    await settle(history, bus, db)
    params = {"tenant": "globex", "conversation_id": "c1", "limit": 10}
    assert await rpc.query("history", "conversations.list", {**params, "view": "all"}) == []
    assert await rpc.query("history", "messages.last", params) == []
    assert await rpc.query("history", "events.range", params) == []
    for name in ("conversation.get", "transcript"):
        with pytest.raises(RemoteError) as missing:
            await rpc.query("history", name, params)
        assert missing.value.code == "not_found"
    assert len(await rpc.query("history", "messages.last", {**params, "tenant": "acme"})) == 3


async def test_events_range_and_unknown_query(
    history: HistoryService, bus: Bus, db: AsyncDatabase, rpc: RpcClient
) -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    built = conversation("acme", "c1", 2) + conversation("acme", "c2", 1)
    events = [
        e.model_copy(update={"occurred_at": start + timedelta(seconds=i)})
        for i, e in enumerate(built)
    ]
    await bus.publish_many(events)
    await settle(history, bus, db)
    c1 = await rpc.query(
        "history", "events.range", {"tenant": "acme", "conversation_id": "c1", "limit": 100}
    )
    assert [e["id"] for e in c1] == [e.id for e in events if e.stream == "conv:c1"] and all(
        e["hash"] for e in c1
    )
    span = {
        "from_ts": events[2].occurred_at.isoformat(),
        "to_ts": events[4].occurred_at.isoformat(),
    }
    ranged = await rpc.query("history", "events.range", {"tenant": "acme", **span, "limit": 100})
    assert [e["id"] for e in ranged] == [e.id for e in events[2:5]]
    with pytest.raises(RemoteError) as unknown:
        await rpc.query("history", "messages.everything", {"tenant": "acme"})
    assert unknown.value.code == "unknown_query"
