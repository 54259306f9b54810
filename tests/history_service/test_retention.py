"""Data retention, driven directly with a fixed clock: bodies of long-closed conversations go,
on the record, and the hash-chained archive still verifies (and still catches tampering)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from history_service.hash_chain import verify_chain
from history_service.queries import HistoryQueries
from history_service.retention import REDACTED, RetentionJob
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RemoteError
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.admin.helpers import eventually, owner_session
from tests.gateway.wsclient import Client
from tests.system import RunningSystem, running_system


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings) as running:
        yield running


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Any]:
    client = make_client(settings.mongo_url or "")
    yield database(client, settings.mongo_db)
    await client.close()


async def chat(system: RunningSystem, tenant: str, visitor: str, body: str, *, close: bool) -> str:
    customer = await Client.connect(system.gateway.ws_url, system.visitor_token(tenant, visitor))
    conversation_id = (await customer.op("start", visitor={"name": visitor}))["conversation_id"]
    assert (await customer.op("send", conversation_id=conversation_id, body=body))["t"] == "ack"
    if close:
        assert (await customer.op("close", conversation_id=conversation_id))["t"] == "ack"
    await customer.close()
    return conversation_id


async def bodies(queries: HistoryQueries, tenant: str, conversation_id: str) -> list[str]:
    found = await queries.messages_last({"tenant": tenant, "conversation_id": conversation_id})
    return [m["event"]["data"]["body"] for m in found if m["event"]["type"] == "message.sent"]


# A card number with spaces: no id, hash or timestamp in the archived transcript can hold it,
# so finding it there means a leak ("4242" alone also turned up inside random hex ids).
CARD = "4242 4242 4242 4242"


async def test_retention_redacts_old_closed_conversations_on_the_record_and_the_chain_verifies(
    system: RunningSystem, db: Any, bus: Bus
) -> None:
    queries = HistoryQueries(db)
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await owner_session(system, http, "keeper")
        await owner_session(system, http, "forever")  # no retention set: kept for ever
        assert (
            await http.patch("/api/admin/settings", headers=owner, json={"retention_days": 7})
        ).status_code == 200
    closed = await chat(system, "keeper", "v-old", f"my card is {CARD}", close=True)
    still_open = await chat(system, "keeper", "v-open", "still talking", close=False)
    kept = await chat(system, "forever", "v-kept", "keep me", close=True)
    for tenant, conversation_id in (("keeper", closed), ("forever", kept)):
        await eventually(
            lambda t=tenant, c=conversation_id: _closed(queries, t, c),
            what="the closes in the read model",
        )
    now = datetime.now(UTC)

    # Not old enough yet: nothing happens.
    assert (
        await RetentionJob(db, bus.publish, clock=lambda: now + timedelta(days=6)).run_once() == []
    )
    assert await bodies(queries, "keeper", closed) == [f"my card is {CARD}"]

    later = RetentionJob(db, bus.publish, clock=lambda: now + timedelta(days=8))
    [record] = await later.run_once()
    assert (
        record.type == "history.retention_applied"
        and record.data["conversation_ids"] == [closed]
        and record.data["messages"] == 1
    )
    assert record.data["retention_days"] == 7
    assert await bodies(queries, "keeper", closed) == [REDACTED]  # the read model
    assert await bodies(queries, "keeper", still_open) == ["still talking"]  # open: untouched
    assert await bodies(queries, "forever", kept) == ["keep me"]  # other tenant, no retention
    archived = await queries.transcript({"tenant": "keeper", "conversation_id": closed})
    assert (
        CARD not in str(archived) and archived["conversation"]["message_count"] == 1
    )  # the conversation itself stays
    assert await later.run_once() == []  # done once

    # The record is on the log and archived; the chain verifies with the redaction.
    await eventually(
        lambda: db["events"].find_one({"_id": record.id}),
        what="the retention record in the archive",
    )
    verdict = await verify_chain(db, "keeper")
    assert verdict["ok"] is True, verdict
    assert (await verify_chain(db))["ok"] is True

    # What remains is still tamper-evident.
    redacted = await db["events"].find_one(
        {"tenant": "keeper", "stream": f"conv:{closed}", "type": "message.sent"}
    )
    await db["events"].update_one(
        {"_id": redacted["_id"]}, {"$set": {"data.body": "something else"}}
    )
    broken = await verify_chain(db, "keeper")
    assert broken["ok"] is False and broken["event_id"] == redacted["_id"]
    # ...and redaction without a record is caught too.
    await db["events"].update_one(
        {"_id": redacted["_id"]}, {"$set": {"data.body": REDACTED, "redacted.by": "no-such-record"}}
    )
    assert (await verify_chain(db, "keeper"))["ok"] is False


async def _closed(queries: HistoryQueries, tenant: str, conversation_id: str) -> bool:
    try:
        conversation = await queries.conversation_get(
            {"tenant": tenant, "conversation_id": conversation_id}
        )
    except RemoteError:  # not folded yet
        return False
    return conversation["status"] == "closed"
