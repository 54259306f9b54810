"""Archive a batch of log events into ``events`` with the hash chain (idempotent)."""

from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from contracts.envelope import LoggedEvent
from history_service.hash_chain import GENESIS, chain_key, envelope_of, link_hash

DUPLICATE_KEY = 11000


def archive_document(logged: LoggedEvent) -> dict[str, Any]:
    """The stored form: the envelope in JSON mode (what the hash covers) plus position.

    ``ts`` repeats ``occurred_at`` as a BSON date for time-range queries; the string form
    is kept because it is exactly what was hashed (BSON dates drop microseconds).
    """
    env = logged.envelope.model_dump(mode="json")
    ts: datetime = logged.envelope.occurred_at
    return {"_id": env.pop("id"), "position": logged.position, **env, "ts": ts}


async def insert_ignoring_duplicates(
    collection: AsyncCollection, documents: list[dict[str, Any]]
) -> None:
    """One unordered insert; ids stored already (a replay, a racing writer) are not errors."""
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            raise


class Archive:
    def __init__(self, db: AsyncDatabase) -> None:
        self._events = db["events"]
        self._last_hash: dict[str, str] = {}

    async def ensure_indexes(self) -> None:
        await self._events.create_index("position")
        await self._events.create_index([("tenant", 1), ("stream", 1), ("position", 1)])
        await self._events.create_index([("tenant", 1), ("ts", 1)])

    async def _previous(self, key: str, tenant: str, stream: str) -> str:
        if key not in self._last_hash:
            last = await self._events.find_one(
                {"tenant": tenant, "stream": stream}, sort=[("position", -1)]
            )
            self._last_hash[key] = last["hash"] if last else GENESIS
        return self._last_hash[key]

    async def unseen(self, batch: list[LoggedEvent]) -> list[LoggedEvent]:
        """The events of ``batch`` not archived yet, first copy of each id only.

        A publisher retry that landed twice, or a batch replayed after a crash, is
        dropped here, so read models see every event id exactly once.
        """
        ids = [e.envelope.id for e in batch]
        known = {d["_id"] async for d in self._events.find({"_id": {"$in": ids}}, {"_id": 1})}
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
            await insert_ignoring_duplicates(self._events, documents)
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
