"""History queries over request/reply; every one is scoped by tenant."""

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from history_service.hash_chain import envelope_of
from history_service.read_models import message_event
from relaydesk.bus.rpc import RemoteError

MAX_LIMIT = 500
VIEW_FILTERS: dict[str, dict[str, Any]] = {
    "queued": {"status": {"$in": ["queued", "offered"]}},
    "missed": {"status": "missed"},
    "closed": {"status": "closed"},
    "all": {},
}


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    """An archive entry as answered: the envelope plus its position and chain links."""
    return {**envelope_of(doc), "position": doc["position"], "prev_hash": doc.get("prev_hash"), "hash": doc.get("hash")}


def _timestamp(value: Any, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise RemoteError("bad_request", f"{name} must be an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    doc.pop("_id", None)
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in doc.items()}


class HistoryQueries:
    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db

    async def handle(self, name: str, params: dict[str, Any]) -> Any:
        handler = {
            "messages.last": self.messages_last, "conversations.list": self.conversations_list,
            "conversation.get": self.conversation_get, "transcript": self.transcript, "events.range": self.events_range,
        }.get(name)
        if handler is None:
            raise RemoteError("unknown_query", f"history has no query {name!r}")
        if not isinstance(params.get("tenant"), str):
            raise RemoteError("bad_request", "tenant is required")
        return await handler(params)

    async def messages_last(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"tenant": p["tenant"], "conversation_id": str(p["conversation_id"])}
        if isinstance(p.get("before_position"), int):
            query["position"] = {"$lt": p["before_position"]}
        limit = max(1, min(int(p.get("limit") or 50), MAX_LIMIT))
        docs = [d async for d in self._db["messages"].find(query).sort("position", -1).limit(limit)]
        return [{"position": d["position"], "event": message_event(d)} for d in reversed(docs)]

    async def conversations_list(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        view = str(p.get("view") or "all")
        query: dict[str, Any] = {"tenant": p["tenant"]}
        if view == "mine":
            query.update(agent_id=str(p.get("agent_id")), status="engaged")
        elif view in VIEW_FILTERS:
            query.update(VIEW_FILTERS[view])
        else:
            raise RemoteError("bad_request", f"unknown view {view!r}")
        if isinstance(p.get("visitor_id"), str):
            query["visitor.id"] = p["visitor_id"]
        limit = max(1, min(int(p.get("limit") or 100), MAX_LIMIT))
        return [_clean(d) async for d in self._db["conversations"].find(query).sort("last_position", -1).limit(limit)]

    async def conversation_get(self, p: dict[str, Any]) -> dict[str, Any]:
        doc = await self._db["conversations"].find_one({"_id": f"{p['tenant']}|{p['conversation_id']}"})
        if doc is None:
            raise RemoteError("not_found", "no such conversation")
        return _clean(doc)

    async def transcript(self, p: dict[str, Any]) -> dict[str, Any]:
        conversation = await self.conversation_get(p)
        events = [_entry(d) async for d in self._db["events"].find({"tenant": p["tenant"], "stream": f"conv:{p['conversation_id']}"}).sort("position", 1)]
        return {"conversation": conversation, "events": events}

    async def events_range(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"tenant": p["tenant"]}
        if isinstance(p.get("conversation_id"), str):
            query["stream"] = f"conv:{p['conversation_id']}"
        span = {op: _timestamp(p[name], name) for op, name in (("$gte", "from_ts"), ("$lte", "to_ts")) if p.get(name)}
        if span:
            query["ts"] = span
        limit = max(1, min(int(p.get("limit") or 1000), 10_000))
        return [_entry(d) async for d in self._db["events"].find(query).sort("position", 1).limit(limit)]
