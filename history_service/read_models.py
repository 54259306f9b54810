"""Read models for the console and the widget: ``conversations`` and ``messages``.

Idempotent by construction: messages are keyed by event id; an event changes a
conversation only when its position is newer than the conversation's ``last_position``,
so replaying a batch after a crash changes nothing. One writer (the history consumer)
owns these collections.
"""

from typing import Any

import structlog
from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from contracts.envelope import Envelope, LoggedEvent
from contracts.errors import ContractError
from contracts.events.conversation import (
    ContactProvided,
    ConversationAccepted,
    ConversationClosed,
    ConversationMissed,
    ConversationOffered,
    ConversationQueued,
    ConversationRated,
    ConversationRequested,
    ConversationTransferred,
)
from contracts.events.message import AttachmentSent, MessageSent, SystemNote
from contracts.registry import parse_event_data
from history_service.archive import insert_ignoring_duplicates

log = structlog.get_logger(__name__)

MESSAGE_TYPES = frozenset({MessageSent.TYPE, AttachmentSent.TYPE, SystemNote.TYPE})
COUNTED_MESSAGES = frozenset({MessageSent.TYPE, AttachmentSent.TYPE})
STATUS_BY_TYPE = {
    ConversationQueued.TYPE: "queued",
    ConversationOffered.TYPE: "offered",
    ConversationAccepted.TYPE: "engaged",
    ConversationTransferred.TYPE: "engaged",
    ConversationClosed.TYPE: "closed",
    ConversationMissed.TYPE: "missed",
}
VISITOR_FIELDS = ("id", "name", "email", "page_url")
MESSAGE_FIELDS = (
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


def message_document(event: Envelope, position: int, conversation_id: str) -> dict[str, Any]:
    env = event.model_dump(mode="json")
    return {
        "_id": event.id,
        "event_id": event.id,
        "position": position,
        "conversation_id": conversation_id,
        **{k: env[k] for k in MESSAGE_FIELDS},
    }


def message_event(document: dict[str, Any]) -> dict[str, Any]:
    """The envelope (JSON mode) a ``messages`` document was made from."""
    return {"id": document["event_id"], **{k: document.get(k) for k in MESSAGE_FIELDS}}


def conversation_key(tenant: str, data: dict[str, Any]) -> str:
    return f"{tenant}|{data['conversation_id']}"


def valid_data(event: Envelope) -> dict[str, Any] | None:
    """The event's data validated (and upcast) by the registry, or None with a warning."""
    try:
        return parse_event_data(event).model_dump(mode="json")
    except ContractError as exc:
        log.warning(
            "history_event_skipped",
            event_id=event.id,
            event_type=event.type,
            v=event.v,
            reason=exc.code,
        )
        return None


class ReadModels:
    def __init__(self, db: AsyncDatabase) -> None:
        self._conversations = db["conversations"]
        self._messages = db["messages"]

    async def ensure_indexes(self) -> None:
        await self._messages.create_index([("tenant", 1), ("conversation_id", 1), ("position", -1)])
        await self._conversations.create_index(
            [("tenant", 1), ("status", 1), ("last_position", -1)]
        )
        await self._conversations.create_index([("tenant", 1), ("visitor.id", 1)])

    async def apply(self, batch: list[LoggedEvent]) -> None:
        """Fold a batch in log order; unknown or invalid events are skipped.

        The batch's conversations are loaded in one query, folded in memory (an event at
        or below a conversation's ``last_position`` was applied before a crash and is
        skipped) and written back in one bulk write; messages go in one unordered insert
        that ignores ids already stored. Three round trips per batch, whatever its size.
        """
        folded = [
            (logged, data)
            for logged in batch
            if (data := valid_data(logged.envelope)) is not None
            and isinstance(data.get("conversation_id"), str)
        ]
        keys = list({conversation_key(logged.envelope.tenant, data) for logged, data in folded})
        conversations = (
            {d["_id"]: d async for d in self._conversations.find({"_id": {"$in": keys}})}
            if keys
            else {}
        )
        touched: set[str] = set()
        messages: list[dict[str, Any]] = []
        for logged, data in folded:
            if fold_conversation(logged, data, conversations):
                touched.add(conversation_key(logged.envelope.tenant, data))
            if logged.envelope.type in MESSAGE_TYPES:
                messages.append(
                    message_document(logged.envelope, logged.position, data["conversation_id"])
                )
        if touched:
            await self._conversations.bulk_write(
                [ReplaceOne({"_id": k}, conversations[k], upsert=True) for k in touched],
                ordered=False,
            )
        if messages:
            await insert_ignoring_duplicates(self._messages, messages)


def fold_conversation(
    logged: LoggedEvent, data: dict[str, Any], conversations: dict[str, dict[str, Any]]
) -> bool:
    """Apply one event to its conversation in memory; True when it changed it."""
    event, position = logged.envelope, logged.position
    key = conversation_key(event.tenant, data)
    current = conversations.get(key)
    if event.type == ConversationRequested.TYPE:
        if current is not None:
            return False  # replayed: created already
        conversations[key] = {"_id": key, **new_conversation(event, data, position)}
        return True
    if current is None or position <= current["last_position"]:
        return False
    changes = conversation_changes(event, data, current)
    if not changes:
        return False
    if event.type in COUNTED_MESSAGES:
        current["message_count"] += 1
    current.update(changes, last_position=position)
    return True


def new_conversation(event: Envelope, data: dict[str, Any], position: int) -> dict[str, Any]:
    visitor = data.get("visitor") or {}
    return {
        "conversation_id": data["conversation_id"],
        "tenant": event.tenant,
        "status": "queued",
        "channel": data.get("channel", "web"),
        "visitor": {k: visitor.get(k) for k in VISITOR_FIELDS},
        "department": data.get("department"),
        "topic": data.get("topic"),
        "agent_id": None,
        "created_at": event.occurred_at,
        "accepted_at": None,
        "closed_at": None,
        "last_message_at": None,
        "message_count": 0,
        "rating": None,
        "last_position": position,
    }


def conversation_changes(
    event: Envelope, data: dict[str, Any], current: dict[str, Any]
) -> dict[str, Any]:
    """The fields an event sets on its conversation ``current`` ({} = none)."""
    at = event.occurred_at
    if event.type in COUNTED_MESSAGES:
        return {"last_message_at": at}
    if event.type == ContactProvided.TYPE:
        return {
            "visitor": {**current["visitor"], "email": data["email"]}
        }  # the offline form's email, kept with what the visitor said before
    if event.type == ConversationRated.TYPE:
        return {"rating": {"score": data.get("score"), "comment": data.get("comment")}}
    if event.type not in STATUS_BY_TYPE:
        return {}
    fields: dict[str, Any] = {"status": STATUS_BY_TYPE[event.type]}
    if event.type == ConversationAccepted.TYPE:
        fields.update(agent_id=data.get("agent_id"), accepted_at=at)
    elif event.type == ConversationTransferred.TYPE:
        fields["agent_id"] = data.get("to_agent_id")
    elif event.type == ConversationClosed.TYPE:
        fields["closed_at"] = at
    return fields
