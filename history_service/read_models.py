"""The read model for the console and the widget: ``conversations``.

Idempotent by construction: an event changes a conversation only when its position is
newer than the conversation's ``last_position``, so replaying a batch after a crash
changes nothing. One writer (the history consumer) owns the collection.

A conversation's messages have no read model of their own: ``messages.last`` reads them
from the archive, which holds every message event once already (keyed by event id, with
the index a conversation's page needs). A ``messages`` row per message used to be a third
document written per chat message, for the same envelope (docs/performance.md).
"""

from dataclasses import dataclass, field
from typing import Any

import structlog
from beanie import BulkWriter
from beanie.operators import In
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from contracts.envelope import Envelope, LoggedEvent
from contracts.errors import ContractError
from contracts.events.connector import UserBlocked
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
from contracts.events.message import AttachmentSent, MessageEdited, MessageSent, SystemNote
from contracts.registry import parse_event_data
from history_service.documents import (
    ConversationRating,
    ConversationView,
    ConversationVisitor,
)
from relaydesk.store import bound

log = structlog.get_logger(__name__)

# what a conversation's message list shows (the console draws edits and blocks as lines too)
MESSAGE_TYPES = frozenset(
    {MessageSent.TYPE, AttachmentSent.TYPE, MessageEdited.TYPE, SystemNote.TYPE, UserBlocked.TYPE}
)
COUNTED_MESSAGES = frozenset({MessageSent.TYPE, AttachmentSent.TYPE})
STATUS_BY_TYPE = {
    ConversationQueued.TYPE: "queued",
    ConversationOffered.TYPE: "offered",
    ConversationAccepted.TYPE: "engaged",
    ConversationTransferred.TYPE: "engaged",
    ConversationClosed.TYPE: "closed",
    ConversationMissed.TYPE: "missed",
}


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


def is_message(envelope_json: dict[str, Any]) -> bool:
    """An archived message event the registry accepts, with its conversation: what the
    console shows as a message (an invalid one is archived, not shown; the consumer logged
    it as ``history_event_skipped`` when it came)."""
    try:
        data = parse_event_data(Envelope.model_validate(envelope_json))
    except (ContractError, ValidationError):
        return False
    return isinstance(getattr(data, "conversation_id", None), str)


class ReadModels:
    """The history consumer's writes to ``conversations``."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db

    async def apply(self, batch: list[LoggedEvent]) -> None:
        """Fold a batch in log order; unknown or invalid events are skipped.

        The batch's conversations are loaded in one query, folded in memory (an event at
        or below a conversation's ``last_position`` was applied before a crash and is
        skipped) and written back in one bulk write: one write per conversation the batch
        touched, however many of its events it holds. Two round trips per batch.
        """
        folded = await self.fold(batch)
        if not folded.touched:
            return
        # Whole documents, inserted or replaced, not ``save()``'s upsert of ``$set`` with
        # every field: the store then checks and applies no update operator and diffs
        # nothing (a fifth less of its CPU per conversation write, docs/performance.md).
        # The history consumer is the only writer, and a conversation not loaded by
        # ``fold`` does not exist (a retried batch loads the ones its first try stored).
        model = folded.model
        async with BulkWriter(ordered=False, object_class=model) as writer:
            for key in folded.touched:
                if key in folded.stored:
                    await folded.conversations[key].replace(bulk_writer=writer)
                else:
                    await model.insert_one(folded.conversations[key], bulk_writer=writer)

    async def fold(self, batch: list[LoggedEvent]) -> "FoldedBatch":
        """The batch's conversations as stored, with the batch folded into them in memory."""
        model = await bound(self._db, ConversationView)
        events = [
            (logged, data)
            for logged in batch
            if (data := valid_data(logged.envelope)) is not None
            and isinstance(data.get("conversation_id"), str)
        ]
        keys = list({conversation_key(logged.envelope.tenant, data) for logged, data in events})
        conversations = {c.id: c async for c in model.find(In(model.id, keys))} if keys else {}
        folded = FoldedBatch(model, conversations, stored=frozenset(conversations))
        for logged, data in events:
            if fold_conversation(logged, data, conversations, model):
                folded.touched.add(conversation_key(logged.envelope.tenant, data))
        return folded


@dataclass
class FoldedBatch:
    """``conversations`` by key after a batch's fold: ``stored`` were loaded from the store,
    the others are new; ``touched``: those the batch changed (to be written)."""

    model: type[ConversationView]
    conversations: dict[str, ConversationView]
    stored: frozenset[str]
    touched: set[str] = field(default_factory=set)


def fold_conversation(
    logged: LoggedEvent,
    data: dict[str, Any],
    conversations: dict[str, ConversationView],
    model: type[ConversationView],
) -> bool:
    """Apply one event to its conversation in memory; True when it changed it.

    ``model`` is the bound document class new conversations are made of.
    """
    event, position = logged.envelope, logged.position
    key = conversation_key(event.tenant, data)
    current = conversations.get(key)
    if event.type == ConversationRequested.TYPE:
        if current is not None:
            return False  # replayed: created already
        conversations[key] = new_conversation(model, key, event, data, position)
        return True
    if current is None or position <= current.last_position:
        return False
    changes = conversation_changes(event, data, current)
    if not changes:
        return False
    if event.type in COUNTED_MESSAGES:
        current.message_count += 1
    for name, value in changes.items():
        setattr(current, name, value)
    current.last_position = position
    return True


def new_conversation(
    model: type[ConversationView], key: str, event: Envelope, data: dict[str, Any], position: int
) -> ConversationView:
    visitor = data.get("visitor") or {}
    return model(
        id=key,
        conversation_id=data["conversation_id"],
        tenant=event.tenant,
        status="queued",
        channel=data.get("channel", "web"),
        visitor=ConversationVisitor(
            **{k: visitor.get(k) for k in ConversationVisitor.model_fields}
        ),
        department=data.get("department"),
        topic=data.get("topic"),
        created_at=event.occurred_at,
        last_position=position,
    )


def conversation_changes(
    event: Envelope, data: dict[str, Any], current: ConversationView
) -> dict[str, Any]:
    """The fields an event sets on its conversation ``current`` ({} = none)."""
    at = event.occurred_at
    if event.type in COUNTED_MESSAGES:
        return {"last_message_at": at}
    if event.type == ContactProvided.TYPE:
        return {
            "visitor": current.visitor.model_copy(update={"email": data["email"]})
        }  # the offline form's email, kept with what the visitor said before
    if event.type == ConversationRated.TYPE:
        return {"rating": ConversationRating(score=data.get("score"), comment=data.get("comment"))}
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
