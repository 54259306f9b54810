"""History queries over request/reply; every one is scoped by tenant."""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from relaydesk.bus.rpc import RemoteError

MAX_LIMIT = 500
VIEW_FILTERS: dict[str, dict[str, Any]] = {
    "queued": {"status": {"$in": ["queued", "offered"]}},
    "missed": {"status": "missed"},
    "closed": {"status": "closed"},
    "all": {},
}


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
        limit = min(int(p.get("limit") or 50), MAX_LIMIT)
        docs = [d async for d in self._db["messages"].find(query).sort("position", -1).limit(limit)]
        return [{"position": d["position"], "event": d["event"]} for d in reversed(docs)]

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
        limit = min(int(p.get("limit") or 100), MAX_LIMIT)
        return [_clean(d) async for d in self._db["conversations"].find(query).sort("updated_position", -1).limit(limit)]

    async def conversation_get(self, p: dict[str, Any]) -> dict[str, Any]:
        doc = await self._db["conversations"].find_one({"_id": f"{p['tenant']}|{p['conversation_id']}"})
        if doc is None:
            raise RemoteError("not_found", "no such conversation")
        return _clean(doc)

    async def transcript(self, p: dict[str, Any]) -> dict[str, Any]:
        conversation = await self.conversation_get(p)
        events = [_clean(d) | {"id": d["_id"]} async for d in self._db["events"].find({"tenant": p["tenant"], "stream": f"conv:{p['conversation_id']}"}).sort("position", 1)]
        return {"conversation": conversation, "events": events}

    async def events_range(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"tenant": p["tenant"]}
        if isinstance(p.get("conversation_id"), str):
            query["stream"] = f"conv:{p['conversation_id']}"
        span = {k: v for k, v in (("$gte", p.get("from_ts")), ("$lte", p.get("to_ts"))) if isinstance(v, str)}
        if span:
            query["occurred_at"] = span
        limit = min(int(p.get("limit") or 1000), 10_000)
        return [_clean(d) | {"id": d["_id"]} async for d in self._db["events"].find(query).sort("position", 1).limit(limit)]
