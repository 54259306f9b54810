"""The MongoDB client helper survives a server restart; documents are bound per database."""

import asyncio
import uuid
from pathlib import Path

import pytest

from history_service.documents import ConversationView
from relaydesk.store import (
    Checkpoint,
    Checkpoints,
    bind_documents,
    bound,
    database,
    make_client,
    with_store_retry,
)
from tests.admin.helpers import eventually
from tools.embedded import EmbeddedMongo


async def test_one_client_keeps_working_across_a_server_restart(tmp_path: Path) -> None:
    server = EmbeddedMongo(str(tmp_path / "data")).start()
    client = make_client(server.url)
    try:
        db = database(client, "restart")
        checkpoints = Checkpoints(db)
        await checkpoints.save("history", 41)
        await db.items.insert_one({"_id": "before"})

        server.stop()  # the server goes away under a live client ...
        outage = asyncio.create_task(
            with_store_retry(lambda: db.items.insert_one({"_id": "during"}), max_s=60)
        )
        await asyncio.to_thread(server.start)  # ... and comes back on the same port and data

        await outage  # the write issued during the outage lands once the server is back
        await checkpoints.save("history", 42)
        assert await checkpoints.load("history") == 42
        assert sorted([doc["_id"] async for doc in db.items.find({})]) == ["before", "during"]
    finally:
        await client.close()
        server.stop()


async def test_documents_bound_to_two_databases_at_once_stay_apart(mongo_url: str) -> None:
    """beanie binds a class process-wide; relaydesk binds one subclass per database object,
    so two systems in one process (tests, replay's scratch database) never share a collection."""
    client = make_client(mongo_url)
    names = [f"t_bind_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        first, second = (database(client, name) for name in names)
        await Checkpoints(first).save("history", 7)
        await Checkpoints(second).save("history", 9)
        await Checkpoints(second).save("history", 8)  # $max: never backwards

        assert await Checkpoints(first).load("history") == 7
        assert await Checkpoints(second).load("history") == 9
        assert await first.checkpoints.find_one({"_id": "history"}) == {
            "_id": "history",
            "position": 7,
        }
        assert (await bound(first, Checkpoint)) is not (await bound(second, Checkpoint))
        assert (await bound(first, Checkpoint)) is (await bound(first, Checkpoint))
        # the model itself is never bound, so it can be bound again for the next database
        assert Checkpoint.__dict__.get("_document_settings") is None
    finally:
        for name in names:
            await client.drop_database(name)
        await client.close()


async def test_a_model_binding_creates_the_indexes_it_declares(mongo_url: str) -> None:
    client = make_client(mongo_url)
    name = f"t_bind_{uuid.uuid4().hex[:8]}"
    try:
        db = database(client, name)
        await bind_documents(db, [ConversationView])
        indexes = {
            tuple(index["key"]) for index in (await db.conversations.index_information()).values()
        }
        assert (("tenant", 1), ("status", 1), ("last_position", -1)) in indexes
        assert (("tenant", 1), ("visitor.id", 1)) in indexes
    finally:
        await client.drop_database(name)
        await client.close()


async def test_a_connection_the_store_closed_for_idling_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first sign-in after five quiet minutes answered 500: the embedded store had closed
    # the pooled connection (its client idle timeout) and the driver wrote on it anyway.
    from secantus.server import SecantusDBServer

    from relaydesk import store

    server = SecantusDBServer(
        port=0, storage_path=":memory:", replica_set_name=None, client_idle_timeout_s=0.5
    )
    server.start()
    monkeypatch.setattr(store, "MAX_IDLE_MS", 200)  # below the server's idle timeout
    client = store.make_client(f"mongodb://127.0.0.1:{server.port}/?directConnection=true")
    try:
        rows = client["idle"]["rows"]
        await rows.insert_one({"n": 1})
        # until the server has closed connections for idling (no time is assumed; the
        # driver's monitors reconnect on their own schedule, so fewer, not none)
        open_after_insert = server._active_conns
        await eventually(
            lambda: server._active_conns < open_after_insert, what="an idle connection closed"
        )
        await rows.insert_one({"n": 2})
        assert await rows.count_documents({}) == 2
    finally:
        await client.close()
        server.stop()
