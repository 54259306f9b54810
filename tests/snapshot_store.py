"""Shared steps of the snapshot tests (routing's, billing's, administration's, the
connectors'): reading and spoiling a service's snapshot collection (relaydesk/snapshots.py)
in the test's database, and a service's settings without a store (the whole log folded)."""

from collections.abc import Callable
from typing import Any

import bson
import pytest
from structlog.testing import capture_logs

from contracts import Envelope
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.admin.helpers import eventually


def without_store(settings: Settings) -> Settings:
    """No MongoDB: no snapshot, the whole log folded (the stream holds all of it here)."""
    return settings.model_copy(update={"mongo_url": None})


def stored(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as MongoDB gives them back (BSON: tuples become lists, and so on)."""
    return list(bson.decode(bson.encode({"records": records}))["records"])


async def snapshot_collection(settings: Settings, name: str, act: Callable[[Any], Any]) -> Any:
    client = make_client(settings.mongo_url or "")
    try:
        return await act(database(client, settings.mongo_db)[name])
    finally:
        await client.close()


async def meta_of(settings: Settings, name: str) -> dict[str, Any]:
    meta = await snapshot_collection(settings, name, lambda c: c.find_one({"_id": "_meta"}))
    assert meta is not None
    return dict(meta)


async def chunk_generations(settings: Settings, name: str) -> set[str]:
    chunks = await snapshot_collection(
        settings, name, lambda c: c.find({"_id": {"$ne": "_meta"}}).to_list()
    )
    return {c["gen"] for c in chunks}


async def corrupt_records(chunks: Any) -> None:
    await chunks.update_many(
        {"_id": {"$ne": "_meta"}}, {"$set": {"records": [{"k": "tenant", "t": "acme", "d": {}}]}}
    )


# Snapshots a start cannot use, and the reason it logs: each is ignored, the log folded.
UNUSABLE = pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda c: c.update_one({"_id": "_meta"}, {"$set": {"version": 0}}), "version"),
        (lambda c: c.update_one({"_id": "_meta"}, {"$unset": {"position": ""}}), "unreadable"),
        (corrupt_records, "unreadable"),
    ],
    ids=["older-version", "meta-of-another-layout", "records-that-do-not-decode"],
)


def crash_before_meta(monkeypatch: pytest.MonkeyPatch, store: type) -> None:
    """Every save of ``store`` dies once its chunks are written, before ``_meta`` switches."""

    async def crashed(*_: Any) -> None:
        raise ConnectionError("store went away")

    monkeypatch.setattr(store, "switch", crashed)


async def publish_until_a_save_fails(bus: Bus, events: list[Envelope], service: str) -> None:
    """Publish ``events`` and wait for ``service``'s snapshot write to fail."""
    with capture_logs() as logs:
        await bus.publish_many(events)
        await eventually(
            lambda: any(e["event"] == f"{service}_snapshot_failed" for e in logs),
            what="a snapshot write to fail",
        )


async def assert_previous_snapshot_kept(
    settings: Settings, name: str, before: dict[str, Any]
) -> None:
    """The crashed saves' chunks are there, ``_meta`` still names the previous snapshot."""
    assert await chunk_generations(settings, name) - {before["gen"]}
    assert await meta_of(settings, name) == before
