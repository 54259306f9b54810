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
from history_service.hash_chain import GENESIS, chain_key, link_hash
from relaydesk.archived import envelope_of
from relaydesk.store import bound, descending, stored_rows

DUPLICATE_KEY = 11000


class EventId(BaseModel):
    """Projection of an archived event to its id and position (which ids of a batch are
    stored, and where)."""

    id: str = Field(alias="_id")
    position: int


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


Head = tuple[str, int]  # a chain's last hash and its number of events


class Archive:
    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db
        self._heads: dict[str, Head] = {}

    async def head(self, tenant: str, stream: str) -> Head:
        """The chain's last hash and length as archived (loaded once, then kept in memory)."""
        key = f"{tenant}|{stream}"
        if key not in self._heads:
            model = await bound(self._db, ArchivedEvent)
            chain = (model.tenant == tenant, model.stream == stream)
            newest = model.find(*chain).sort(descending(model.position)).limit(1)
            last = [r async for r in stored_rows(newest)]
            count = await model.find(*chain).count() if last else 0
            self._heads[key] = (last[0]["hash"], count) if last else (GENESIS, 0)
        return self._heads[key]

    def remember(self, tenant: str, stream: str, head: Head) -> Head:
        """A chain's head found by a caller's own read of the archive (kept if none is known)."""
        return self._heads.setdefault(f"{tenant}|{stream}", head)

    async def last_position_within(self, first: int, last: int) -> int | None:
        """The highest log position archived in ``first..last``, if any."""
        model = await bound(self._db, ArchivedEvent)
        within = model.find(model.position >= first, model.position <= last)
        newest = within.sort(descending(model.position)).limit(1).project(EventId)
        found = [d["position"] async for d in stored_rows(newest)]
        return found[0] if found else None

    async def first_copies(
        self, batch: list[LoggedEvent]
    ) -> tuple[list[LoggedEvent], list[LoggedEvent]]:
        """``(unseen, first)``: the events of ``batch`` not archived yet (first copy of each
        id), and every event of ``batch`` that is its id's first copy in the log, archived or
        not.

        A publisher retry that landed twice is a later copy: dropped from both, so read
        models see every event id once (the rule of ``relaydesk.dedupe``, held against the
        archive, which keeps every first copy with its position). An event read again after
        a crash is archived at its own position: not unseen, but still a first copy, which
        the read models fold again where their own guard says it is missing.
        """
        ids = [e.envelope.id for e in batch]
        model = await bound(self._db, ArchivedEvent)
        archived_at = {
            d["_id"]: d["position"]
            async for d in stored_rows(model.find(In(model.id, ids)).project(EventId))
        }
        unseen, first = [], []
        for logged in batch:
            at = archived_at.get(logged.envelope.id)
            if at is None:
                archived_at[logged.envelope.id] = logged.position
                unseen.append(logged)
                first.append(logged)
            elif at == logged.position:
                first.append(logged)
        return unseen, first

    async def write(self, fresh: list[LoggedEvent]) -> dict[str, Head]:
        """Archive the unseen events :meth:`first_copies` returned, chaining each stream's hashes.

        Returns the heads of the chains it extended (``tenant|stream`` → hash, length):
        what the audit checkpoints sign, from this writer's memory, not a read of the store.
        """
        documents, heads = await self._chain([archive_document(logged) for logged in fresh])
        if not documents:
            return {}
        try:
            events = await archive_collection(self._db)
            await ignoring_duplicates(events.insert_many(documents, ordered=False))
        except Exception:
            self._forget(heads)  # reload the heads from Mongo on the retry
            raise
        self._heads.update(heads)
        return heads

    async def _chain(
        self, documents: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, Head]]:
        # New heads are kept aside until the insert succeeded, so a failed write that is
        # retried does not chain onto hashes that never reached the store.
        heads: dict[str, Head] = {}
        for doc in documents:
            key = chain_key(doc)
            prev, count = heads.get(key) or await self.head(doc["tenant"], doc["stream"])
            doc["prev_hash"], doc["hash"] = prev, link_hash(prev, envelope_of(doc))
            heads[key] = (doc["hash"], count + 1)
        return documents, heads

    def _forget(self, heads: dict[str, Head]) -> None:
        for key in heads:
            self._heads.pop(key, None)
