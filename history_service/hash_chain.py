"""The per-stream hash chain of the archive: tamper evidence for audits.

``hash = sha256(prev_hash + canonical JSON of the event)``, chained per ``(tenant, stream)``
in log order. The canonical JSON is the envelope dumped in JSON mode, serialised by orjson
with sorted keys, so anyone holding the event can recompute it. Changing, removing or
reordering an archived event breaks its link (and, by ``prev_hash``, every later one).

Retention (``history_service/retention.py``) redacts message contents in place: such an
event keeps its original ``hash`` (the chain links on), and its ``redacted.hash`` is
checked instead — the hash of the redacted envelope over the same ``prev_hash`` — and
its conversation must be named by the ``history.retention_applied`` record ``redacted.by``.
So content can only go away on the record, and what remains cannot be edited unseen.
"""

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase

from contracts.events.history import RetentionApplied
from history_service.documents import ArchivedEvent
from relaydesk.archived import envelope_of
from relaydesk.store import ascending, bound, stored_rows

GENESIS = "0" * 64


def link_hash(prev_hash: str, envelope_json: dict[str, Any]) -> str:
    canonical = orjson.dumps(envelope_json, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


def chain_key(document: dict[str, Any]) -> str:
    return f"{document['tenant']}|{document['stream']}"


async def verify_chain(
    db: AsyncDatabase,
    tenant: str | None = None,
    stream: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Walk every chain (optionally one tenant or stream) in log order.

    Returns ``{"ok": True, "checked": n}`` or the first broken link: ``{"ok": False, "tenant",
    "stream", "event_id", "position", "expected_hash", "found_hash", ...}``.
    """
    e = await bound(db, ArchivedEvent)
    query = e.find(batch_size=1000)
    if tenant:
        query = query.find(e.tenant == tenant)
    if stream:
        query = query.find(e.stream == stream)
    last: dict[str, str] = {}
    checked = 0
    retained = await retention_records(db, tenant)
    async for doc in stored_rows(query.sort(ascending(e.position))):
        expected_prev = last.get(chain_key(doc), GENESIS)
        expected = expected_hash(doc, expected_prev, retained)
        if doc.get("prev_hash") != expected_prev or doc.get("hash") != expected:
            return {
                "ok": False,
                "checked": checked,
                "tenant": doc["tenant"],
                "stream": doc["stream"],
                "event_id": doc["_id"],
                "position": doc["position"],
                "expected_hash": expected,
                "found_hash": doc.get("hash"),
                "expected_prev_hash": expected_prev,
                "found_prev_hash": doc.get("prev_hash"),
            }
        last[chain_key(doc)] = expected
        checked += 1
        if on_progress is not None and checked % 1000 == 0:
            on_progress(checked)
    return {"ok": True, "checked": checked}


def expected_hash(doc: dict[str, Any], expected_prev: str, retained: dict[str, set[str]]) -> str:
    """The hash an archived event must carry after ``expected_prev`` (pure).

    ``retained``: retention records, event id → ``tenant|conversation id`` they purged.
    """
    computed = link_hash(expected_prev, envelope_of(doc))
    redaction = doc.get("redacted")
    if redaction is None:
        return computed
    # The original content is gone: its hash is taken as stored, the rest is checked.
    on_record = f"{doc['tenant']}|{doc['stream'].removeprefix('conv:')}" in retained.get(
        redaction.get("by"), ()
    )
    # "" when missing: an event without its hash is a broken link, reported
    return doc.get("hash", "") if on_record and redaction.get("hash") == computed else computed


def retention_record(doc: dict[str, Any]) -> set[str]:
    """What one archived ``history.retention_applied`` record purged: ``tenant|conversation``."""
    return {f"{doc['tenant']}|{c}" for c in (doc.get("data") or {}).get("conversation_ids") or ()}


async def retention_records(db: AsyncDatabase, tenant: str | None) -> dict[str, set[str]]:
    """Archived retention records: event id → ``tenant|conversation id`` of what it purged."""
    e = await bound(db, ArchivedEvent)
    query = e.find(e.type == RetentionApplied.TYPE)
    if tenant:
        query = query.find(e.tenant == tenant)
    return {doc["_id"]: retention_record(doc) async for doc in stored_rows(query)}
