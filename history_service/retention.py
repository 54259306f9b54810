"""Data retention: message contents of long-closed conversations are removed from history.

A tenant's ``retention_days`` (folded here from the archived ``tenant.settings_changed``
events) says how long content is kept after a conversation closes. Once per run, for
each such tenant, conversations closed before ``now - retention_days`` that were not
purged yet are taken in groups; for each group the job

1. publishes ``history.retention_applied`` (id derived from the tenant and the group, so a
   rerun after a crash publishes the same event) — the record comes first, so nothing is
   ever redacted without one;
2. redacts the archived message events (the body, an attachment's file name, become
   :data:`REDACTED`); ``messages.last`` reads messages from the archive, so the console
   shows the redacted text at once;
3. remembers the conversations as done (collection ``retention``).

The archive keeps every event, its ``hash`` and ``prev_hash``: the chain still links.
A redacted event also gets ``redacted: {by, hash}`` — the retention event's id and the
hash of the redacted envelope — which ``verify_chain`` checks instead of the original
content (see docs/history.md). Conversation read models (status, times, counts, visitor)
are kept: reports and audits still see that the conversation happened.
"""

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from beanie import BulkWriter
from beanie.operators import LT, In
from pydantic import BaseModel, Field
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from contracts import Actor, Envelope, derive_event_id
from contracts.envelope import ActorKind
from contracts.events.admin import TenantSettingsChanged
from contracts.events.history import MAX_CONVERSATIONS, RetentionApplied
from contracts.events.message import AttachmentSent, MessageEdited, MessageSent
from contracts.settings import accepted_changes
from history_service.documents import ArchivedEvent, ConversationView, RetentionMark
from history_service.hash_chain import link_hash
from relaydesk.archived import envelope_of
from relaydesk.store import ascending, bound, stored_rows

log = structlog.get_logger(__name__)

REDACTED = "[removed under the retention policy]"
CONTENT_FIELDS = {
    MessageSent.TYPE: ("body",),
    AttachmentSent.TYPE: ("filename", "caption"),
    MessageEdited.TYPE: ("body",),
}
HISTORY_ACTOR = Actor(kind=ActorKind.system, id="history")
Publish = Callable[[Envelope], Awaitable[Any]]
Clock = Callable[[], datetime]


class ClosedConversation(BaseModel):
    """Projection: the id of a conversation due for retention."""

    conversation_id: str


class MarkId(BaseModel):
    id: str = Field(alias="_id")


def redacted_data(type_name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        **data,
        **{name: REDACTED for name in CONTENT_FIELDS.get(type_name, ()) if name in data},
    }


class RetentionJob:
    """Args:
    db: the history database (archive ``events``, read models, ``retention``).
    publish: how the ``history.retention_applied`` record reaches the log (``bus.publish``).
    clock: now, UTC (tests pass a fixed one).
    """

    def __init__(
        self, db: AsyncDatabase, publish: Publish, clock: Clock, group_size: int = MAX_CONVERSATIONS
    ) -> None:
        self._db = db
        self._publish = publish
        self._clock = clock
        self._group_size = group_size

    async def retention_by_tenant(self) -> dict[str, int]:
        days: dict[str, int | None] = {}
        e = await bound(self._db, ArchivedEvent)
        query = e.find(e.type == TenantSettingsChanged.TYPE).sort(ascending(e.position))
        async for doc in stored_rows(query):
            after = accepted_changes((doc.get("data") or {}).get("after") or {})
            if "retention_days" in after:
                days[doc["tenant"]] = after["retention_days"]
        return {tenant: int(value) for tenant, value in days.items() if value}

    async def run_once(self) -> list[Envelope]:
        """Apply every tenant's retention now; the records published (none when nothing is due)."""
        published = []
        now = self._clock()
        for tenant, days in sorted((await self.retention_by_tenant()).items()):
            cutoff = now - timedelta(days=days)
            while group := await self._due(tenant, cutoff):
                published.append(await self._purge(tenant, days, cutoff, group))
        return published

    async def _due(self, tenant: str, cutoff: datetime) -> list[str]:
        c = await bound(self._db, ConversationView)
        query = c.find(c.tenant == tenant, c.status == "closed", LT(c.closed_at, cutoff))
        closed = [
            d.conversation_id
            async for d in query.sort(ascending(c.closed_at)).project(ClosedConversation)
        ]
        marks = await bound(self._db, RetentionMark)
        done = (
            {
                d.id
                async for d in marks.find(In(marks.id, [f"{tenant}|{c}" for c in closed])).project(
                    MarkId
                )
            }
            if closed
            else set()
        )
        return [c for c in closed if f"{tenant}|{c}" not in done][: self._group_size]

    async def _purge(
        self, tenant: str, days: int, cutoff: datetime, conversation_ids: list[str]
    ) -> Envelope:
        streams = [f"conv:{c}" for c in conversation_ids]
        e = await bound(self._db, ArchivedEvent)
        archived = [
            d
            async for d in stored_rows(
                e.find(
                    e.tenant == tenant, In(e.stream, streams), In(e.type, sorted(CONTENT_FIELDS))
                )
            )
        ]
        group_key = hashlib.sha256("\n".join(sorted(conversation_ids)).encode()).hexdigest()[:32]
        record = Envelope(
            id=derive_event_id(tenant, "history.retention", group_key),
            type=RetentionApplied.TYPE,
            tenant=tenant,
            stream="history:retention",
            actor=HISTORY_ACTOR,
            data={
                "retention_days": days,
                "cutoff": cutoff.isoformat(),
                "conversation_ids": conversation_ids,
                "messages": len(archived),
            },
        )
        await self._publish(record)  # first: whatever is redacted below has its record
        archive_updates: list[UpdateOne] = []
        for doc in archived:
            data = redacted_data(doc["type"], doc.get("data") or {})
            envelope = {**envelope_of(doc), "data": data}
            archive_updates.append(
                UpdateOne(
                    {"_id": doc["_id"]},
                    {
                        "$set": {
                            "data": data,
                            "redacted": {
                                "by": record.id,
                                "hash": link_hash(doc["prev_hash"], envelope),
                            },
                        }
                    },
                )
            )
        if archive_updates:
            # The archive is written raw, like everywhere (see archive.py): the redaction
            # sets exactly the fields the chain verification reads back.
            await e.get_pymongo_collection().bulk_write(archive_updates, ordered=False)
        marks = await bound(self._db, RetentionMark)
        async with BulkWriter(ordered=False, object_class=marks) as done:
            for c in conversation_ids:
                mark = marks(id=f"{tenant}|{c}", tenant=tenant, by=record.id, at=self._clock())
                await mark.save(bulk_writer=done)
        log.info(
            "retention_applied",
            tenant=tenant,
            retention_days=days,
            conversations=len(conversation_ids),
            messages=len(archived),
        )
        return record
