"""The MongoDB client helper survives a server restart: one client, writes before and after."""

import asyncio
from pathlib import Path

from relaydesk.store import Checkpoints, database, make_client, with_store_retry
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
