"""Archive a batch of log events into ``events`` with the hash chain (idempotent).

The writes are raw PyMongo bulk inserts of plain documents, not beanie ``insert_many``:
on this path beanie's per-document validation and encoding cost more CPU per event than
the insert itself (both measured in docs/performance.md, ``python -m
tools.bench.archive_writes``). The collection, its fields and its indexes are still the
:class:`~history_service.documents.ArchivedEvent` model's.
"""

from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from beanie.operators import In
from pydantic import BaseModel, Field
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from contracts.envelope import LoggedEvent
from history_service.documents import ArchivedEvent
from history_service.hash_chain import GENESIS, chain_key, envelope_of, link_hash
from relaydesk.store import bound, descending, stored_rows

DUPLICATE_KEY = 11000


class EventId(BaseModel):
    """Projection of an archived event to its id (which ids of a batch are stored)."""

    id: str = Field(alias="_id")


def archive_document(logged: LoggedEvent) -> dict[str, Any]:
    """The stored form: the envelope in JSON mode (what the hash covers) plus position.

    ``ts`` repeats ``occurred_at`` as a BSON date for time-range queries; the string form
    is kept because it is exactly what was hashed (BSON dates drop microseconds).
    """
    env = logged.envelope.model_dump(mode="json")
    ts: datetime = logged.envelope.occurred_at
    return {"_id": env.pop("id"), "position": logged.position, **env, "ts": ts}


async def ignoring_duplicates(insert: Awaitable[Any]) -> None:
    """Await one unordered insert; ids stored already (a replay, a racing writer) are not errors."""
    try:
        await insert
    except BulkWriteError as exc:
        if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            raise


async def archive_collection(db: AsyncDatabase) -> AsyncCollection:
    """The ``events`` collection as the bound :class:`ArchivedEvent` model has it."""
    return (await bound(db, ArchivedEvent)).get_pymongo_collection()


class Archive:
    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db
        self._last_hash: dict[str, str] = {}

    async def _previous(self, key: str, tenant: str, stream: str) -> str:
        if key not in self._last_hash:
            model = await bound(self._db, ArchivedEvent)
            query = model.find(model.tenant == tenant, model.stream == stream)
            last = [r async for r in stored_rows(query.sort(descending(model.position)).limit(1))]
            self._last_hash[key] = last[0]["hash"] if last else GENESIS
        return self._last_hash[key]

    async def unseen(self, batch: list[LoggedEvent]) -> list[LoggedEvent]:
        """The events of ``batch`` not archived yet, first copy of each id only.

        A publisher retry that landed twice, or a batch replayed after a crash, is
        dropped here, so read models see every event id exactly once.
        """
        ids = [e.envelope.id for e in batch]
        model = await bound(self._db, ArchivedEvent)
        known = {
            d["_id"] async for d in stored_rows(model.find(In(model.id, ids)).project(EventId))
        }
        fresh = []
        for logged in batch:
            if logged.envelope.id not in known:
                known.add(logged.envelope.id)
                fresh.append(logged)
        return fresh

    async def write(self, fresh: list[LoggedEvent]) -> None:
        """Archive events returned by :meth:`unseen`, chaining each stream's hashes."""
        documents, heads = await self._chain([archive_document(logged) for logged in fresh])
        if not documents:
            return
        try:
            events = await archive_collection(self._db)
            await ignoring_duplicates(events.insert_many(documents, ordered=False))
        except Exception:
            self._forget(heads)  # reload the heads from Mongo on the retry
            raise
        self._last_hash.update(heads)

    async def _chain(
        self, documents: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        # New heads are kept aside until the insert succeeded, so a failed write that is
        # retried does not chain onto hashes that never reached the store.
        heads: dict[str, str] = {}
        for doc in documents:
            key = chain_key(doc)
            prev = heads.get(key) or await self._previous(key, doc["tenant"], doc["stream"])
            doc["prev_hash"], doc["hash"] = prev, link_hash(prev, envelope_of(doc))
            heads[key] = doc["hash"]
        return documents, heads

    def _forget(self, heads: dict[str, str]) -> None:
        for key in heads:
            self._last_hash.pop(key, None)
