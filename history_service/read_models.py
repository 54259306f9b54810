"""Read models for the console and the widget: ``conversations`` and ``messages``.

Idempotent by construction: messages are keyed by event id; a conversation update
applies only when its position is newer than the conversation's ``last_position``, so
replaying a batch after a crash changes nothing.
"""

from typing import Any

import structlog
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from contracts.envelope import Envelope, LoggedEvent
from contracts.errors import ContractError
from contracts.registry import parse_event_data
from history_service.archive import insert_ignoring_duplicates

log = structlog.get_logger(__name__)

MESSAGE_TYPES = frozenset({"message.sent", "message.attachment_sent", "message.system"})
COUNTED_MESSAGES = frozenset({"message.sent", "message.attachment_sent"})
STATUS_BY_TYPE = {
    "conversation.queued": "queued", "conversation.offered": "offered", "conversation.accepted": "engaged",
    "conversation.transferred": "engaged", "conversation.closed": "closed", "conversation.missed": "missed",
}
VISITOR_FIELDS = ("id", "name", "email", "page_url")
MESSAGE_FIELDS = ("type", "v", "tenant", "stream", "actor", "occurred_at", "correlation_id", "causation_id", "data")


def message_document(event: Envelope, position: int, conversation_id: str) -> dict[str, Any]:
    env = event.model_dump(mode="json")
    return {"_id": event.id, "event_id": event.id, "position": position, "conversation_id": conversation_id, **{k: env[k] for k in MESSAGE_FIELDS}}


def message_event(document: dict[str, Any]) -> dict[str, Any]:
    """The envelope (JSON mode) a ``messages`` document was made from."""
    return {"id": document["event_id"], **{k: document.get(k) for k in MESSAGE_FIELDS}}


def valid_data(event: Envelope) -> dict[str, Any] | None:
    """The event's data validated (and upcast) by the registry, or None with a warning."""
    try:
        return parse_event_data(event).model_dump(mode="json")
    except ContractError as exc:
        log.warning("history_event_skipped", event_id=event.id, event_type=event.type, v=event.v, reason=exc.code)
        return None


class ReadModels:
    def __init__(self, db: AsyncDatabase) -> None:
        self._conversations = db["conversations"]
        self._messages = db["messages"]

    async def ensure_indexes(self) -> None:
        await self._messages.create_index([("tenant", 1), ("conversation_id", 1), ("position", -1)])
        await self._conversations.create_index([("tenant", 1), ("status", 1), ("last_position", -1)])
        await self._conversations.create_index([("tenant", 1), ("visitor.id", 1)])

    async def apply(self, batch: list[LoggedEvent]) -> None:
        """Fold a batch in log order with two round trips; unknown or invalid events are skipped.

        Conversation updates go in one *ordered* bulk write so each sees the previous
        one's ``last_position``; messages in one unordered insert that ignores ids
        already stored.
        """
        updates: list[UpdateOne] = []
        messages: list[dict[str, Any]] = []
        for logged in batch:
            self._fold(logged, updates, messages)
        if updates:
            await self._conversations.bulk_write(updates, ordered=True)
        if messages:
            await insert_ignoring_duplicates(self._messages, messages)

    def _fold(self, logged: LoggedEvent, updates: list[UpdateOne], messages: list[dict[str, Any]]) -> None:
        event, position = logged.envelope, logged.position
        data = valid_data(event)
        conversation_id = (data or {}).get("conversation_id")
        if data is None or not isinstance(conversation_id, str):
            return
        key = f"{event.tenant}|{conversation_id}"
        if event.type == "conversation.requested":
            updates.append(UpdateOne({"_id": key}, {"$setOnInsert": self._new_conversation(event, data, position)}, upsert=True))
            return
        update = self._conversation_update(event, data)
        if update:
            update.setdefault("$set", {})["last_position"] = position
            updates.append(UpdateOne({"_id": key, "last_position": {"$lt": position}}, update))
        if event.type in MESSAGE_TYPES:
            messages.append(message_document(event, position, conversation_id))

    @staticmethod
    def _new_conversation(event: Envelope, data: dict[str, Any], position: int) -> dict[str, Any]:
        visitor = data.get("visitor") or {}
        return {
            "conversation_id": data["conversation_id"], "tenant": event.tenant, "status": "queued",
            "channel": data.get("channel", "web"), "visitor": {k: visitor.get(k) for k in VISITOR_FIELDS},
            "department": data.get("department"), "topic": data.get("topic"), "agent_id": None,
            "created_at": event.occurred_at, "accepted_at": None, "closed_at": None, "last_message_at": None,
            "message_count": 0, "rating": None, "last_position": position,
        }

    @staticmethod
    def _conversation_update(event: Envelope, data: dict[str, Any]) -> dict[str, Any]:
        at = event.occurred_at
        if event.type in COUNTED_MESSAGES:
            return {"$set": {"last_message_at": at}, "$inc": {"message_count": 1}}
        if event.type == "conversation.rated":
            return {"$set": {"rating": {"score": data.get("score"), "comment": data.get("comment")}}}
        if event.type not in STATUS_BY_TYPE:
            return {}
        fields: dict[str, Any] = {"status": STATUS_BY_TYPE[event.type]}
        if event.type == "conversation.accepted":
            fields.update(agent_id=data.get("agent_id"), accepted_at=at)
        elif event.type == "conversation.transferred":
            fields["agent_id"] = data.get("to_agent_id")
        elif event.type == "conversation.closed":
            fields["closed_at"] = at
        return {"$set": fields}
