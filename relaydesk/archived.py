"""The log's older part, read back from history's archive.

The log stream keeps 30 days (relaydesk/bus/topology.py); history archives every event
into ``events`` for good. A service that folds its state from the start of the log
(administration, billing, the connectors' configuration) or from a snapshot older than
the stream's first retained entry would otherwise start without whatever the retention
removed: agents, groups and settings made more than a month ago, bills, connectors. It
reads that part here, in log order, before the stream takes over (relaydesk/bus/catch_up.py).

The archive holds the first copy of each event id (history drops second copies as every
reader does), so folding it gives what folding the log gave.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from contracts.envelope import Envelope, LoggedEvent
from relaydesk.settings import Settings
from relaydesk.store import Row, database, make_client

ARCHIVE_COLLECTION = "events"
ENVELOPE_FIELDS = (
    "type",
    "v",
    "tenant",
    "stream",
    "actor",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "data",
)


def envelope_of(document: dict[str, Any]) -> dict[str, Any]:
    """The envelope (JSON mode) an archive document was made from."""
    return {"id": document.get("_id"), **{k: document.get(k) for k in ENVELOPE_FIELDS}}


class ArchivedLog:
    """Reads positions of the log from the archive of the database ``db``."""

    def __init__(self, db: AsyncDatabase[Row], *, batch_size: int = 1000) -> None:
        self._events = db[ARCHIVE_COLLECTION]
        self._batch_size = batch_size

    async def batches(self, since: int, until: int) -> AsyncIterator[list[LoggedEvent]]:
        """The archived events at positions ``since`` (included) to ``until`` (excluded), in
        log order, ``batch_size`` at a time."""
        cursor = (
            self._events.find({"position": {"$gte": since, "$lt": until}})
            .sort("position", 1)
            .batch_size(self._batch_size)
        )
        batch: list[LoggedEvent] = []
        async for document in cursor:
            batch.append(
                LoggedEvent(
                    position=document["position"],
                    envelope=Envelope.model_validate(envelope_of(document)),
                )
            )
            if len(batch) >= self._batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


@contextlib.asynccontextmanager
async def archive_of(settings: Settings) -> AsyncIterator[ArchivedLog | None]:
    """The archive ``settings`` name, on a client of its own for the block (a tool's one
    fold); None without MongoDB."""
    if not settings.mongo_url:
        yield None
        return
    client = make_client(settings.mongo_url)
    try:
        yield ArchivedLog(database(client, settings.mongo_db))
    finally:
        await client.close()
