"""The audit listing of a tenant's administrative changes, read from the archive.

Every admin change is an event whose envelope says who (``actor``) and whose data says
what (``before``/``after`` for edits, the new object for creations); history archives
every event, so the listing is a query by tenant, type and time, newest first. Secrets
and password hashes are on the log only sealed or hashed, and even those stay out of
the answer: an auditor learns that they changed, not what they are.
"""

from datetime import datetime
from typing import Any

from beanie.operators import In
from pymongo.asynchronous.database import AsyncDatabase

from contracts.events.admin import AgentStatusChanged, CannedResponseUsed, TenantSettingsChanged
from contracts.events.billing import SubscriptionChanged
from contracts.events.connector import InboundReceived, OutboundFailed, OutboundSent
from contracts.events.routing import AgentConnectionLost
from contracts.registry import EVENTS
from history_service.documents import ArchivedEvent
from relaydesk.store import bound, descending, stored_rows

# What an auditor picks from, by type prefix (the admin single writers' event families).
KIND_PREFIXES = {
    "agents": "agent.",
    "groups": "permission_group.",
    "canned": "canned_response.",
    "settings": TenantSettingsChanged.TYPE,
    "webhooks": "webhook.",
    "connectors": "connector.",
    "plan": SubscriptionChanged.TYPE,
}
# Same prefixes, but chat activity rather than changes an administrator made.
NOT_ADMIN = frozenset(
    {
        AgentStatusChanged.TYPE,
        AgentConnectionLost.TYPE,
        CannedResponseUsed.TYPE,
        InboundReceived.TYPE,
        OutboundSent.TYPE,
        OutboundFailed.TYPE,
    }
)
SUBJECT_KEYS = ("agent_id", "group_id", "canned_id", "subscription_id", "connector_id", "plan")
HIDDEN = {
    "password_hash": "(hidden)",
    "sealed_config": "(sealed)",
    "sealed_secrets": "(sealed)",
    "token_hash": "(hidden)",
}
MAX_LIMIT, DEFAULT_LIMIT = 1000, 200


def types_of(kind: str | None) -> list[str]:
    """The registered admin event types of one kind (all when None); [] for an unknown kind."""
    prefixes = (
        list(KIND_PREFIXES.values())
        if kind is None
        else [KIND_PREFIXES[kind]]
        if kind in KIND_PREFIXES
        else []
    )
    return sorted(
        name
        for name in EVENTS.names()
        if name not in NOT_ADMIN and any(name.startswith(p) for p in prefixes)
    )


def kind_of(type_name: str) -> str:
    return next(kind for kind, prefix in KIND_PREFIXES.items() if type_name.startswith(prefix))


def hide_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (HIDDEN[k] if k in HIDDEN and v is not None else hide_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [hide_secrets(v) for v in value]
    return value


def _before_after(type_name: str, data: dict[str, Any]) -> tuple[Any, Any]:
    if "before" in data or "after" in data:  # an edit says both itself
        return data.get("before"), data.get("after")
    if type_name == SubscriptionChanged.TYPE:
        return {"plan": data.get("previous_plan")}, {
            "plan": data.get("plan"),
            "effective": data.get("effective"),
        }
    if type_name.endswith((".removed", ".deleted", ".unsubscribed")):
        return None, None
    return None, {
        k: v for k, v in data.items() if k not in SUBJECT_KEYS
    }  # a creation: the object made


def entry(doc: dict[str, Any]) -> dict[str, Any]:
    data = hide_secrets(doc.get("data") or {})
    subject = next((str(data[k]) for k in SUBJECT_KEYS if isinstance(data.get(k), str)), None)
    before, after = _before_after(doc["type"], data)
    return {
        "position": doc["position"],
        "occurred_at": doc["occurred_at"],
        "type": doc["type"],
        "kind": kind_of(doc["type"]),
        "actor": doc.get("actor"),
        "subject": subject,
        "before": before,
        "after": after,
    }


async def admin_events(
    db: AsyncDatabase,
    tenant: str,
    kind: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
) -> list[dict[str, Any]]:
    e = await bound(db, ArchivedEvent)
    query = e.find(e.tenant == tenant, In(e.type, types_of(kind)))
    if since is not None:
        query = query.find(e.ts >= since)
    if until is not None:
        query = query.find(e.ts <= until)
    count = max(1, min(int(limit or DEFAULT_LIMIT), MAX_LIMIT))
    return [
        entry(doc) async for doc in stored_rows(query.sort(descending(e.position)).limit(count))
    ]
