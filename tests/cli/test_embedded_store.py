"""The embedded store as ``relaydesk up`` and the tests start it (tools/embedded.py)."""

import uuid

import pytest

from relaydesk.store import make_client
from tests.servers import MongoServer


async def test_the_embedded_store_writes_no_oplog(mongo_server: MongoServer) -> None:
    """Standalone: relaydesk uses no change streams or transactions, so SecantusDB's
    replica-set oplog (an entry per write, the document again) was only cost."""
    if mongo_server.embedded is None:
        pytest.skip("the session's store is not the embedded one (MONGO_URL or a container)")
    client = make_client(mongo_server.url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        probe = client[name]["probe"]
        await probe.insert_one({"_id": 1})
        await probe.replace_one({"_id": 1}, {"_id": 1, "seen": True})
        assert await probe.find_one({"_id": 1}) == {"_id": 1, "seen": True}
        oplog = client["local"]["oplog.rs"]
        assert await oplog.count_documents({"ns": f"{name}.probe"}) == 0
        assert "setName" not in await client.admin.command("hello")
    finally:
        await client.drop_database(name)
        await client.close()
