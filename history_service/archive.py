"""Archive a batch of log events into ``events`` with the hash chain (idempotent)."""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from contracts.envelope import LoggedEvent
from history_service.hash_chain import GENESIS, link_hash

DUPLICATE_KEY = 11000


def archive_document(logged: LoggedEvent) -> dict[str, Any]:
    env = logged.envelope.model_dump(mode="json")
    return {"_id": env.pop("id"), "position": logged.position, **env}


class Archive:
    def __init__(self, db: AsyncDatabase) -> None:
        self._events = db["events"]
        self._last_hash: dict[str, str] = {}

    async def ensure_indexes(self) -> None:
        await self._events.create_index("position")
        await self._events.create_index([("tenant", 1), ("stream", 1), ("position", 1)])

    async def _previous(self, tenant: str, stream: str) -> str:
        key = f"{tenant}|{stream}"
        if key not in self._last_hash:
            last = await self._events.find_one({"tenant": tenant, "stream": stream}, sort=[("position", -1)])
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
        documents = []
        for logged in fresh:
            doc = archive_document(logged)
            prev = await self._previous(doc["tenant"], doc["stream"])
            doc["prev_hash"], doc["hash"] = prev, link_hash(prev, doc)
            self._last_hash[f"{doc['tenant']}|{doc['stream']}"] = doc["hash"]
            documents.append(doc)
        if documents:
            try:
                await self._events.insert_many(documents, ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                    raise
