"""History queries over request/reply; every one is scoped by tenant."""

from datetime import UTC, datetime
from typing import Any

from beanie.operators import In
from pymongo.asynchronous.database import AsyncDatabase

from contracts.envelope import Envelope, LoggedEvent
from contracts.events.admin import TenantSettingsChanged
from history_service import admin_audit, reports
from history_service.documents import ArchivedEvent, ConversationView, MessageView
from history_service.hash_chain import envelope_of, verify_chain
from history_service.read_models import (
    MESSAGE_TYPES,
    conversation_key,
    fold_conversation,
    message_event,
    valid_data,
)
from relaydesk.bus.rpc import RemoteError
from relaydesk.store import ascending, bound, descending, stored_rows

MAX_LIMIT = 500
VIEW_STATUSES: dict[str, list[str] | None] = {
    "queued": ["queued", "offered"],
    "missed": ["missed"],
    "closed": ["closed"],
    "all": None,
}


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    """An archive entry as answered: the envelope plus its position and chain links."""
    return {
        **envelope_of(doc),
        "position": doc["position"],
        "prev_hash": doc.get("prev_hash"),
        "hash": doc.get("hash"),
    }


def _timestamp(value: Any, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise RemoteError("bad_request", f"{name} must be an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class HistoryQueries:
    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db

    async def handle(self, name: str, params: dict[str, Any]) -> Any:
        handler = {
            "messages.last": self.messages_last,
            "conversations.list": self.conversations_list,
            "conversation.get": self.conversation_get,
            "transcript": self.transcript,
            "events.range": self.events_range,
            "reports.summary": self.reports_summary,
            "conversation.at": self.conversation_at,
            "settings.at": self.settings_at,
            "audit.verify": self.audit_verify,
            "audit.admin_events": self.audit_admin_events,
        }.get(name)
        if handler is None:
            raise RemoteError("unknown_query", f"history has no query {name!r}")
        if not isinstance(params.get("tenant"), str):
            raise RemoteError("bad_request", "tenant is required")
        return await handler(params)

    async def messages_last(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        m = await bound(self._db, MessageView)
        query = m.find(m.tenant == p["tenant"], m.conversation_id == str(p["conversation_id"]))
        if isinstance(p.get("before_position"), int):
            query = query.find(m.position < p["before_position"])
        limit = max(1, min(int(p.get("limit") or 50), MAX_LIMIT))
        docs = await query.sort(descending(m.position)).limit(limit).to_list()
        return [{"position": d.position, "event": message_event(d)} for d in reversed(docs)]

    async def conversations_list(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        view = str(p.get("view") or "all")
        c = await bound(self._db, ConversationView)
        query = c.find(c.tenant == p["tenant"])
        if view == "mine":
            query = query.find(c.agent_id == str(p.get("agent_id")), c.status == "engaged")
        elif view in VIEW_STATUSES:
            statuses = VIEW_STATUSES[view]
            query = query.find(In(c.status, statuses)) if statuses else query
        else:
            raise RemoteError("bad_request", f"unknown view {view!r}")
        if isinstance(p.get("visitor_id"), str):
            query = query.find(c.visitor.id == p["visitor_id"])
        limit = max(1, min(int(p.get("limit") or 100), MAX_LIMIT))
        return [d.public() async for d in query.sort(descending(c.last_position)).limit(limit)]

    async def conversation_get(self, p: dict[str, Any]) -> dict[str, Any]:
        doc = await (await bound(self._db, ConversationView)).get(
            f"{p['tenant']}|{p['conversation_id']}"
        )
        if doc is None:
            raise RemoteError("not_found", "no such conversation")
        return doc.public()

    async def transcript(self, p: dict[str, Any]) -> dict[str, Any]:
        conversation = await self.conversation_get(p)
        e = await bound(self._db, ArchivedEvent)
        query = e.find(e.tenant == p["tenant"], e.stream == f"conv:{p['conversation_id']}")
        events = [_entry(d) async for d in stored_rows(query.sort(ascending(e.position)))]
        return {"conversation": conversation, "events": events}

    async def events_range(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        e = await bound(self._db, ArchivedEvent)
        query = e.find(e.tenant == p["tenant"])
        if isinstance(p.get("conversation_id"), str):
            query = query.find(e.stream == f"conv:{p['conversation_id']}")
        if p.get("from_ts"):
            query = query.find(e.ts >= _timestamp(p["from_ts"], "from_ts"))
        if p.get("to_ts"):
            query = query.find(e.ts <= _timestamp(p["to_ts"], "to_ts"))
        limit = max(1, min(int(p.get("limit") or 1000), 10_000))
        return [
            _entry(d) async for d in stored_rows(query.sort(ascending(e.position)).limit(limit))
        ]

    async def reports_summary(self, p: dict[str, Any]) -> dict[str, Any]:
        """Metrics folded from the archive now (so a changed definition applies to the past too)."""
        group_by = str(p.get("group_by") or "day")
        if group_by not in reports.GROUPINGS:
            raise RemoteError(
                "bad_request", f"group_by must be one of {', '.join(reports.GROUPINGS)}"
            )
        e = await bound(self._db, ArchivedEvent)
        query = e.find(
            e.tenant == p["tenant"], In(e.type, sorted(reports.REPORT_TYPES)), batch_size=1000
        )
        cursor = stored_rows(query.sort(ascending(e.position)))
        facts = reports.fold([envelope_of(d) async for d in cursor]).values()
        since = _timestamp(p["since"], "since") if p.get("since") else None
        until = _timestamp(p["until"], "until") if p.get("until") else None
        chosen = [
            f
            for f in facts
            if (since is None or f.requested_at >= since)
            and (until is None or f.requested_at <= until)
        ]
        rows = reports.summarize(chosen, group_by)
        return {
            "group_by": group_by,
            "rows": rows,
            "definitions": reports.DEFINITIONS,
            "csv": reports.to_csv(rows),
        }

    async def conversation_at(self, p: dict[str, Any]) -> dict[str, Any]:
        """Time travel: the conversation and its messages as they were at ``at``.

        Refolded from the archive.
        """
        at = _timestamp(p.get("at"), "at")
        conversations: dict[str, ConversationView] = {}
        messages: list[dict[str, Any]] = []
        last_position = None
        e = await bound(self._db, ArchivedEvent)
        model = await bound(self._db, ConversationView)
        query = e.find(
            e.tenant == p["tenant"], e.stream == f"conv:{p['conversation_id']}", e.ts <= at
        )
        async for doc in stored_rows(query.sort(ascending(e.position))):
            envelope = Envelope.model_validate(envelope_of(doc))
            data = valid_data(envelope)
            if data is None or not isinstance(data.get("conversation_id"), str):
                continue
            fold_conversation(
                LoggedEvent(position=doc["position"], envelope=envelope),
                data,
                conversations,
                model,
            )
            if envelope.type in MESSAGE_TYPES:
                messages.append(
                    {"position": doc["position"], "event": envelope.model_dump(mode="json")}
                )
            last_position = doc["position"]
        state = conversations.get(
            conversation_key(p["tenant"], {"conversation_id": p["conversation_id"]})
        )
        if state is None:
            raise RemoteError("not_found", "the conversation did not exist at that moment")
        return {
            "at": at.isoformat(),
            "position": last_position,
            "conversation": state.public(),
            "messages": messages,
        }

    async def settings_at(self, p: dict[str, Any]) -> dict[str, Any]:
        """Time travel for tenant settings: every change up to ``at`` applied in log order.

        Only values that were changed appear; the caller fills in the defaults.
        """
        at = _timestamp(p.get("at"), "at")
        folded: dict[str, Any] = {}
        changes = 0
        e = await bound(self._db, ArchivedEvent)
        query = e.find(e.tenant == p["tenant"], e.type == TenantSettingsChanged.TYPE, e.ts <= at)
        async for doc in stored_rows(query.sort(ascending(e.position))):
            folded.update((doc.get("data") or {}).get("after") or {})
            changes += 1
        return {"at": at.isoformat(), "changed": folded, "changes": changes}

    async def audit_verify(self, p: dict[str, Any]) -> dict[str, Any]:
        """Check the hash chain of a tenant (or one conversation); the first broken link if any."""
        stream = (
            f"conv:{p['conversation_id']}" if isinstance(p.get("conversation_id"), str) else None
        )
        return await verify_chain(self._db, p["tenant"], stream)

    async def audit_admin_events(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        """The tenant's administrative changes (who, what, before/after), newest first."""
        kind = p.get("kind") or None
        if kind is not None and kind not in admin_audit.KIND_PREFIXES:
            raise RemoteError(
                "bad_request", f"kind must be one of {', '.join(admin_audit.KIND_PREFIXES)}"
            )
        since = _timestamp(p["since"], "since") if p.get("since") else None
        until = _timestamp(p["until"], "until") if p.get("until") else None
        return await admin_audit.admin_events(
            self._db, p["tenant"], kind, since, until, p.get("limit")
        )
