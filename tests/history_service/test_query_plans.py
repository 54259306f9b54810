"""History's reads of the archive are planned on an index, whatever the archive's size.

The embedded server (SecantusDB) uses an index only when every field of the filter is in
it; any other filter is a scan of the whole archive: over a second per console page at
190,000 events, and history stopped for minutes when a new tenant's conversations each
looked up their chain head that way (docs/history.md). Each test records the ``find``
commands a read sends (PyMongo's command monitoring) and asks the server to explain each.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from contracts.events.audit import CHECKPOINT_STREAM
from contracts.queries.history import ConversationAtQuery, MessagesLastQuery
from history_service.anchors import Anchoring
from history_service.archive import Archive
from history_service.documents import ArchivedEvent
from history_service.queries import HistoryQueries
from relaydesk.store import bound
from tests.deciders.test_anchors import SIGNER

T0 = datetime(2026, 12, 1, tzinfo=UTC)


class FindCommands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.finds: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def archive(mongo_url: str) -> AsyncIterator[tuple[AsyncDatabase, FindCommands]]:
    listener = FindCommands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[listener]
    )
    db = client[f"t_plans_{uuid.uuid4().hex[:8]}"]
    e = await bound(db, ArchivedEvent)  # creates the archive's indexes
    rows = [
        {
            "_id": f"request-{n}",
            "position": n - 1,
            "type": "conversation.requested",
            "v": 1,
            "tenant": "acme",
            "stream": f"conv:c{n}",
            "actor": {"kind": "customer", "id": "v1"},
            "occurred_at": T0.isoformat(),
            "data": {"conversation_id": f"c{n}", "visitor": {"id": "v1", "name": "Vic"}},
            "ts": T0,
        }
        for n in (1, 2)
    ]
    for position in range(2, 62):  # c1 message, c1 typing, c2 message, again and again
        stream, kind = [
            ("conv:c1", "message.sent"),
            ("conv:c1", "typing.changed"),
            ("conv:c2", "message.sent"),
        ][(position - 2) % 3]
        rows.append(
            {
                "_id": f"event-{position:04d}",
                "position": position,
                "type": kind,
                "v": 1,
                "tenant": "acme",
                "stream": stream,
                "actor": {"kind": "customer", "id": "v1"},
                "occurred_at": (T0 + timedelta(seconds=position)).isoformat(),
                "data": {
                    "conversation_id": stream.removeprefix("conv:"),
                    "message_id": f"m{position}",
                    "body": f"line {position}",
                    "author_kind": "customer",
                    "author_id": "v1",
                },
                "ts": T0 + timedelta(seconds=position),
                "prev_hash": f"{position - 1:064d}",
                "hash": f"{position:064d}",
            }
        )
    await e.get_pymongo_collection().insert_many(rows)
    listener.finds.clear()
    yield db, listener
    await client.drop_database(db.name)
    await client.close()


async def assert_no_collection_scan(db: AsyncDatabase, finds: list[dict[str, Any]]) -> None:
    """Some finds were sent, and the server plans none of them as a collection scan; each
    plan is its stages from the top down (``SORT/FETCH/IXSCAN``)."""
    plans = []
    for find in finds:
        asked = {k: find[k] for k in ("find", "filter", "sort") if k in find}
        explained = await db.command("explain", asked)
        stage, stages = explained["queryPlanner"]["winningPlan"], []
        while stage:
            stages.append(stage["stage"])
            stage = stage.get("inputStage")
        plans.append("/".join(stages))
    assert plans and not [plan for plan in plans if "COLLSCAN" in plan], plans


async def test_a_page_of_messages_is_read_through_the_conversations_index(
    archive: tuple[AsyncDatabase, FindCommands],
) -> None:
    db, listener = archive
    queries = HistoryQueries(db)

    page = await queries.messages_last(
        MessagesLastQuery(tenant="acme", conversation_id="c1", limit=5)
    )
    older = await queries.messages_last(
        MessagesLastQuery(
            tenant="acme", conversation_id="c1", limit=5, before_position=page[0].position
        )
    )

    assert [m.position for m in page] == [47, 50, 53, 56, 59]  # messages only, oldest first
    assert [m.position for m in older] == [32, 35, 38, 41, 44]
    await assert_no_collection_scan(db, listener.finds)


async def test_the_conversation_as_it_was_is_read_through_the_index(
    archive: tuple[AsyncDatabase, FindCommands],
) -> None:
    db, listener = archive
    at = await HistoryQueries(db).conversation_at(
        ConversationAtQuery(tenant="acme", conversation_id="c2", at=T0 + timedelta(seconds=10))
    )

    assert [m.position for m in at.messages] == [4, 7, 10]
    await assert_no_collection_scan(db, listener.finds)


async def test_a_tenants_last_checkpoint_is_found_through_the_index(
    archive: tuple[AsyncDatabase, FindCommands],
) -> None:
    db, listener = archive
    e = await bound(db, ArchivedEvent)
    await e.get_pymongo_collection().insert_one(
        {
            "_id": "checkpoint-1",
            "position": 62,
            "type": "audit.checkpoint",
            "tenant": "acme",
            "stream": CHECKPOINT_STREAM,
            "data": {"position": 59},
            "ts": T0,
            "hash": "c" * 64,
        }
    )
    listener.finds.clear()

    await Anchoring(SIGNER, Archive(db), db).seed(["acme"])

    await assert_no_collection_scan(db, listener.finds)
