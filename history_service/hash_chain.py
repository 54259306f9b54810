"""The per-stream hash chain of the archive: tamper evidence for audits.

``hash = sha256(prev_hash + canonical JSON of the event)``, chained per ``stream`` in
log order. Changing, removing or reordering an archived event breaks every later link.
"""

import hashlib
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase

GENESIS = "0" * 64
HASHED_FIELDS = ("_id", "type", "v", "tenant", "stream", "actor", "occurred_at", "correlation_id", "causation_id", "data")


def link_hash(prev_hash: str, document: dict[str, Any]) -> str:
    canonical = orjson.dumps({k: document.get(k) for k in HASHED_FIELDS}, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


async def verify_chain(db: AsyncDatabase, tenant: str | None = None, stream: str | None = None) -> dict[str, Any]:
    """Walk every chain (optionally one tenant or stream); report the first broken link."""
    query: dict[str, Any] = {}
    if tenant:
        query["tenant"] = tenant
    if stream:
        query["stream"] = stream
    last: dict[str, str] = {}
    checked = 0
    async for doc in db["events"].find(query).sort("position", 1):
        key = f"{doc['tenant']}|{doc['stream']}"
        expected_prev = last.get(key, GENESIS)
        expected = link_hash(expected_prev, doc)
        if doc.get("prev_hash") != expected_prev or doc.get("hash") != expected:
            return {"ok": False, "checked": checked, "stream": doc["stream"], "tenant": doc["tenant"], "event_id": doc["_id"], "position": doc["position"], "expected_hash": expected, "found_hash": doc.get("hash")}
        last[key] = expected
        checked += 1
    return {"ok": True, "checked": checked}
