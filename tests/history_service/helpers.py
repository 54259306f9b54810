"""Event builders and waiting helpers for the history_service tests."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from contracts import Actor, Envelope
from history_service.service import HistoryService
from relaydesk.bus import Bus
from relaydesk.bus.catch_up import marker_event
from relaydesk.settings import Settings

CUSTOMER = Actor(kind="customer", id="v1")
AGENT = Actor(kind="agent", id="ann")
SYSTEM = Actor(kind="system", id="agent_service")


def event(
    tenant: str, cid: str, type_: str, data: dict[str, Any], actor: Actor = SYSTEM, v: int = 1
) -> Envelope:
    return Envelope(
        type=type_,
        v=v,
        tenant=tenant,
        stream=f"conv:{cid}",
        actor=actor,
        data={"conversation_id": cid, **data},
    )


def requested(tenant: str, cid: str, visitor_id: str = "v1") -> Envelope:
    visitor = {
        "id": visitor_id,
        "name": "Vic",
        "email": "vic@example.com",
        "page_url": "https://shop.example/cart",
    }
    return event(
        tenant,
        cid,
        "conversation.requested",
        {"visitor": visitor, "channel": "web", "department": "sales"},
        CUSTOMER,
    )


def accepted(tenant: str, cid: str, agent_id: str = "ann") -> Envelope:
    return event(
        tenant,
        cid,
        "conversation.accepted",
        {"agent_id": agent_id},
        Actor(kind="agent", id=agent_id),
    )


def message(tenant: str, cid: str, i: int) -> Envelope:
    author = CUSTOMER if i % 2 == 0 else AGENT
    data = {
        "message_id": f"{cid}-m{i}",
        "body": f"message {i}",
        "author_kind": author.kind.value,
        "author_id": author.id,
    }
    return event(tenant, cid, "message.sent", data, author, v=2)


def conversation(tenant: str, cid: str, messages: int) -> list[Envelope]:
    """requested → accepted → N messages (+ a typing event) → closed."""
    typing = event(
        tenant,
        cid,
        "typing.changed",
        {"who_kind": "customer", "who_id": "v1", "typing": True},
        CUSTOMER,
    )
    closed = event(tenant, cid, "conversation.closed", {"closed_by": "agent"}, AGENT)
    return [
        requested(tenant, cid),
        accepted(tenant, cid),
        *(message(tenant, cid, i) for i in range(messages)),
        typing,
        closed,
    ]


async def settle(service: HistoryService, bus: Bus, db: AsyncDatabase, timeout: float = 20) -> int:
    """Publish a marker and wait until the service archived it: everything before is in."""
    marker = marker_event("test")
    await bus.publish(marker)
    async with asyncio.timeout(timeout):
        while (doc := await db["events"].find_one({"_id": marker.id})) is None:
            await asyncio.sleep(0.05)  # polling a condition under a deadline
    await service.wait_for_position(doc["position"], timeout=timeout)
    return int(doc["position"])


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[HistoryService]:
    service = HistoryService(settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
