"""The read model for the console and the widget: ``conversations``.

Idempotent by construction: an event changes a conversation only when its position is
newer than the conversation's ``last_position``, so replaying a batch after a crash
changes nothing. One writer (the history consumer) owns the collection.

A conversation's messages have no read model of their own: ``messages.last`` reads them
from the archive, which holds every message event once already (keyed by event id, with
the index a conversation's page needs). A ``messages`` row per message used to be a third
document written per chat message, for the same envelope (docs/performance.md).
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from beanie.operators import In
from pydantic import ValidationError
from pymongo import InsertOne, ReplaceOne
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
from relaydesk.store import Row, bound, id_chunks

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
    """The history consumer's writes to ``conversations``.

    Conversation writes a busy log makes only for messages (a count and a time) can be held
    back and written together: with 200 chats taking turns a 250 ms batch touches most of
    them, one write each (~0.55 ms of the embedded store's CPU apiece), while a held
    conversation is written at most once per ``HOLD_S`` however many batches touched it
    (docs/performance.md). Every other change (a new conversation, its status, agent,
    rating, contact) is written with its batch, and everything held is written at once
    when the caller says the log is quiet (``hold=False``) or ``HOLD_S`` has passed.

    What is held is not in the store yet: ``unwritten_from`` is the first log position
    whose fold is only in memory, and the consumer's checkpoint stays below it, so after a
    crash those events are read again and folded again (each conversation's
    ``last_position`` tells which of them its stored document already has).
    """

    HOLD_S = 1.0
    # Conversations kept as this writer last wrote them, so a batch need not load them again
    # (docs/performance.md: loading a busy second's conversations was a tenth of the store's
    # time). Safe because this consumer is the only writer of ``conversations``; a write that
    # fails forgets what it tried to write, so the next batch loads those from the store.
    KNOWN_MAX = 5_000

    def __init__(self, db: AsyncDatabase, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._clock = clock
        self._known: OrderedDict[str, ConversationView] = OrderedDict()
        self._held: dict[str, ConversationView] = {}
        self._held_from: dict[str, int] = {}  # key -> first position folded and not written
        self._held_since: float | None = None

    @property
    def unwritten_from(self) -> int | None:
        """The lowest log position folded into a held conversation, None when none is held."""
        return min(self._held_from.values()) if self._held_from else None

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def flush_due(self) -> bool:
        return self._held_since is not None and self._clock() - self._held_since >= self.HOLD_S

    async def apply(self, batch: list[LoggedEvent], *, hold: bool = False) -> None:
        """Fold a batch in log order; unknown or invalid events are skipped.

        The batch's conversations are taken from the held ones or loaded in one query,
        folded in memory (an event at or below a conversation's ``last_position`` was
        applied before a crash and is skipped) and written back in one bulk write: one
        write per conversation, however many of its events the batch holds. With ``hold``,
        conversations that only took messages stay in memory (class docstring) until a
        batch without ``hold`` or ``HOLD_S``.
        """
        folded = await self.fold(batch)
        hold = hold and not self.flush_due()
        for key in folded.touched:
            if hold and key in folded.stored and key not in folded.changed:
                self._held[key] = folded.conversations[key]
                self._held_from.setdefault(key, folded.first_touch[key])
                if self._held_since is None:
                    self._held_since = self._clock()
        writes = {key for key in folded.touched if key not in self._held_from}
        if not hold:
            writes |= set(self._held)
        else:  # a held conversation that now changed otherwise is written with its batch
            writes |= {key for key in folded.changed if key in self._held}
        await self._write(folded, writes)

    async def flush(self) -> None:
        """Write every held conversation now."""
        if self._held:
            model = await bound(self._db, ConversationView)
            held = FoldedBatch(model, dict(self._held), frozenset(self._held))
            await self._write(held, set(self._held))

    async def _write(self, folded: "FoldedBatch", keys: set[str]) -> None:
        if not keys:
            return
        # Whole documents, inserted or replaced, not ``save()``'s upsert of ``$set`` with
        # every field: the store then checks and applies no update operator and diffs
        # nothing (a fifth less of its CPU per conversation write, docs/performance.md).
        # The history consumer is the only writer, and a conversation neither loaded by
        # ``fold`` nor held does not exist (a retried batch loads the ones its first try
        # stored). Written as raw PyMongo requests of ``model_dump``: the same document as
        # beanie's ``replace``/``insert_one`` store (tests/history_service/test_read_models.py),
        # without its per-document encoder, re-validation and state hooks (46 µs against
        # 4 µs to build one, and a sixth of history's CPU under load).
        model = folded.model
        written = {key: folded.conversations.get(key) or self._held[key] for key in keys}
        requests: list[InsertOne[Row] | ReplaceOne[Row]] = [
            ReplaceOne({"_id": key}, stored_form(conversation))
            if key in folded.stored or key in self._held
            else InsertOne(stored_form(conversation))
            for key, conversation in written.items()
        ]
        try:
            await model.get_pymongo_collection().bulk_write(requests, ordered=False)
        except BaseException:
            for key in keys:
                self._known.pop(key, None)
            raise
        for key, conversation in written.items():  # nothing of theirs is only in memory now
            self._held.pop(key, None)
            self._held_from.pop(key, None)
            self._known[key] = conversation
            self._known.move_to_end(key)
        while len(self._known) > self.KNOWN_MAX:
            self._known.popitem(last=False)
        if not self._held:
            self._held_since = None

    async def fold(self, batch: list[LoggedEvent]) -> "FoldedBatch":
        """The batch's conversations as stored (or held), with the batch folded into them."""
        model = await bound(self._db, ConversationView)
        events = [
            (logged, data)
            for logged in batch
            if (data := valid_data(logged.envelope)) is not None
            and isinstance(data.get("conversation_id"), str)
        ]
        keys = list({conversation_key(logged.envelope.tenant, data) for logged, data in events})
        wanted = [key for key in keys if key not in self._held and key not in self._known]
        conversations = {
            c.id: c for chunk in id_chunks(wanted) async for c in model.find(In(model.id, chunk))
        }
        for key in keys:
            if (kept := self._held.get(key) or self._known.get(key)) is not None:
                conversations[key] = kept
        folded = FoldedBatch(model, conversations, stored=frozenset(conversations))
        for logged, data in events:
            if fold_conversation(logged, data, conversations, model):
                key = conversation_key(logged.envelope.tenant, data)
                folded.touched.add(key)
                folded.first_touch.setdefault(key, logged.position)
                if logged.envelope.type not in COUNTED_MESSAGES:
                    folded.changed.add(key)
        return folded


def stored_form(conversation: ConversationView) -> dict[str, Any]:
    """The document beanie would store for ``conversation`` (``_id`` by alias, nulls kept)."""
    return conversation.model_dump(by_alias=True, exclude={"revision_id"})


@dataclass
class FoldedBatch:
    """``conversations`` by key after a batch's fold: ``stored`` were loaded from the store,
    the others are new; ``touched``: those the batch changed (to be written or held)."""

    model: type[ConversationView]
    conversations: dict[str, ConversationView]
    stored: frozenset[str]
    touched: set[str] = field(default_factory=set)
    changed: set[str] = field(default_factory=set)  # touched by more than messages
    first_touch: dict[str, int] = field(default_factory=dict)  # key -> first position folded


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
