"""Audit checkpoints: history's signed statement of each tenant's archive, on the log.

After archiving, history knows every chain head it wrote (hash and length, from its own
memory). It remembers which chains of each tenant changed since that tenant's last
checkpoint and, when a conversation closes and at intervals, publishes an
``audit.checkpoint`` per tenant: the log position covered and those heads, signed with
Ed25519 under a key MongoDB never holds (relaydesk/signing.py). The checkpoint travels on
the log like any event and is archived in the tenant's ``audit:checkpoints`` chain, whose
head the next checkpoint signs in turn. ``history_service/verification.py`` checks an
archive (or an export) against them.

A checkpoint of a tenant is not made while its previous one has not come back from the
log, so a checkpoint's own archiving is always covered by the next one.
"""

from collections.abc import Iterable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel

from contracts.envelope import Envelope, LoggedEvent
from contracts.events.audit import CHECKPOINT_STREAM, MAX_HEADS, AuditCheckpoint
from contracts.events.conversation import ConversationClosed
from contracts.events.system import SYSTEM_TENANT
from history_service.archive import Archive, Head
from history_service.documents import ArchivedEvent
from history_service.retention import HISTORY_ACTOR
from relaydesk.signing import Signer
from relaydesk.store import ascending, bound, descending, stored_rows


def signed_message(tenant: str, position: int, heads: list[dict[str, Any]], key_id: str) -> bytes:
    """The bytes a checkpoint's signature covers (canonical JSON, sorted keys)."""
    return orjson.dumps(
        {
            "type": AuditCheckpoint.TYPE,
            "tenant": tenant,
            "position": position,
            "heads": heads,
            "key_id": key_id,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def checkpoint_message(envelope: dict[str, Any]) -> bytes:
    """The signed bytes of a checkpoint event in JSON form (from the log, archive or export)."""
    data = envelope.get("data") or {}
    return signed_message(
        envelope.get("tenant", ""),
        data.get("position", -1),
        data.get("heads", []),
        data.get("key_id", ""),
    )


def checkpoint_envelopes(
    signer: Signer, tenant: str, position: int, heads: dict[str, Head], now: datetime
) -> list[Envelope]:
    """Signed checkpoint events for ``heads`` (stream → hash, length), ``MAX_HEADS`` each."""
    listed = [
        {"stream": stream, "hash": hash_, "count": count}
        for stream, (hash_, count) in sorted(heads.items())
    ]
    envelopes = []
    for start in range(0, len(listed), MAX_HEADS):
        part = listed[start : start + MAX_HEADS]
        signature = signer.sign(signed_message(tenant, position, part, signer.key_id))
        data = AuditCheckpoint(
            position=position, heads=part, key_id=signer.key_id, signature=signature
        )
        envelopes.append(
            Envelope(
                type=AuditCheckpoint.TYPE,
                tenant=tenant,
                stream=CHECKPOINT_STREAM,
                actor=HISTORY_ACTOR,
                occurred_at=now,
                data=data.model_dump(mode="json"),
            )
        )
    return envelopes


class TenantStream(BaseModel):
    tenant: str
    stream: str


class ChainLink(BaseModel):
    stream: str
    hash: str | None = None


class Anchoring:
    """Which chains changed since each tenant's last checkpoint; makes the next checkpoints.

    Args:
        signer: the current audit signing key.
        archive: the archive writer whose heads are signed.
        db: the history database (read once per tenant, to learn what an earlier process
            archived after the tenant's last checkpoint).
    """

    def __init__(self, signer: Signer, archive: Archive, db: Any) -> None:
        self._signer = signer
        self._archive = archive
        self._db = db
        self._changed: dict[str, dict[str, Head]] = {}
        self._urgent: set[str] = set()
        self._in_flight: dict[str, set[str]] = {}
        self._seeded: set[str] = set()
        self.position: int | None = None

    async def seed(self, tenants: Iterable[str]) -> None:
        """Before archiving a tenant's first events in this process: the chains an earlier
        process archived after the tenant's last checkpoint are still to be signed."""
        for tenant in set(tenants) - self._seeded - {SYSTEM_TENANT}:
            e = await bound(self._db, ArchivedEvent)
            # Checkpoints have a stream of their own: (tenant, stream) is what the index
            # covers, where (tenant, type) made the embedded server scan the whole archive
            # for each tenant's first batch in a process (seconds at 90,000 events).
            newest = e.find(e.tenant == tenant, e.stream == CHECKPOINT_STREAM).sort(
                descending(e.position)
            )
            last = []
            async with aclosing(stored_rows(newest)) as checkpoints:
                async for doc in checkpoints:
                    if doc.get("type") == AuditCheckpoint.TYPE:
                        last.append(doc)
                        break
            changed = self._changed.setdefault(tenant, {})
            if last:
                after = (last[0].get("data") or {}).get("position", -1)
                # The log since that checkpoint, through the position index, the tenant's
                # rows picked here: the embedded server scans the whole archive for
                # (tenant, position > after), an index it only uses field by field. An
                # active tenant was signed a checkpoint interval ago, so this is short.
                since = e.find(e.position > after).sort(ascending(e.position))
                streams = {
                    row["stream"]
                    async for row in stored_rows(since.project(TenantStream))
                    if row["tenant"] == tenant
                }
                for stream in streams:
                    changed.setdefault(stream, await self._archive.head(tenant, stream))
            else:
                # Never signed (an archive older than checkpoints): every chain, from one
                # scan of the tenant's events rather than two queries per chain.
                # in the (tenant, stream, position) index's order: no sort in memory
                order = (ascending(e.stream), ascending(e.position))
                links = e.find(e.tenant == tenant).sort(*order).project(ChainLink)
                heads: dict[str, Head] = {}
                async for row in links:
                    heads[row.stream] = (row.hash or "", heads.get(row.stream, ("", 0))[1] + 1)
                for stream, head in heads.items():
                    changed.setdefault(stream, self._archive.remember(tenant, stream, head))
            self._seeded.add(tenant)

    def resync(self) -> None:
        """After a failed batch (some of it may be stored): learn the changes from the archive."""
        self._seeded.clear()

    def archived(self, fresh: list[LoggedEvent], heads: dict[str, Head], position: int) -> None:
        """A batch is archived up to ``position``; ``heads``: the chains it extended."""
        for key, head in heads.items():
            tenant, stream = key.split("|", 1)
            if tenant != SYSTEM_TENANT:
                self._changed.setdefault(tenant, {})[stream] = head
        for logged in fresh:
            envelope = logged.envelope
            if envelope.type == ConversationClosed.TYPE:
                self._urgent.add(envelope.tenant)
            elif envelope.type == AuditCheckpoint.TYPE:
                waiting = self._in_flight.get(envelope.tenant, set())
                waiting.discard(envelope.id)
                if not waiting:
                    self._in_flight.pop(envelope.tenant, None)
        self.position = position

    def due(self, *, everyone: bool) -> list[Envelope]:
        """Checkpoints to publish now: tenants where a conversation closed, or (``everyone``)
        every tenant with changes; never one whose previous checkpoint is still on its way."""
        if self.position is None:
            return []
        tenants = set(self._changed) if everyone else set(self._urgent)
        made: list[Envelope] = []
        now = datetime.now(UTC)
        for tenant in sorted(tenants):
            changed = self._changed.get(tenant, {})
            if tenant in self._in_flight or not set(changed) - {CHECKPOINT_STREAM}:
                continue
            envelopes = checkpoint_envelopes(self._signer, tenant, self.position, changed, now)
            self._in_flight[tenant] = {e.id for e in envelopes}
            self._changed.pop(tenant)
            self._urgent.discard(tenant)
            made.extend(envelopes)
        return made

    def failed(self, envelopes: list[Envelope]) -> None:
        """These checkpoints were not published: their chains are still to be signed."""
        for envelope in envelopes:
            self._in_flight.pop(envelope.tenant, None)
            changed = self._changed.setdefault(envelope.tenant, {})
            for head in envelope.data["heads"]:
                # a newer head archived since supersedes the one that was not published
                changed.setdefault(head["stream"], (head["hash"], head["count"]))
