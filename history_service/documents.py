"""The history service's MongoDB documents: the archive, the read model, retention marks.

Field names are the stored names and the names the gateway and the console read, so
they do not change; indexes are declared here, on the model, and created when the service
binds its documents at start (``relaydesk.store.bind_documents``).
"""

from datetime import datetime
from typing import Any, ClassVar

from beanie import Document
from pydantic import BaseModel, ConfigDict
from pymongo import ASCENDING, DESCENDING, IndexModel

from relaydesk.archived import ARCHIVE_COLLECTION


class ArchivedEvent(Document):
    """One log event in the archive (collection ``events``): the envelope in JSON mode as it
    was hashed, its log position, the hash chain links, and ``ts`` (``occurred_at`` as a
    BSON date, for time ranges).

    Written with raw bulk inserts and read as raw rows (typed queries through this model,
    ``get_cursor()``): the hash covers the stored fields verbatim, so the archive is never
    normalised through a model, and beanie's per-document cost on the write path is
    measured in docs/performance.md. ``extra="allow"`` because an archived event keeps
    whatever its envelope had.
    """

    model_config = ConfigDict(extra="allow")

    id: str  # type: ignore[assignment]  # the event id
    position: int
    type: str
    v: int
    tenant: str
    stream: str
    actor: dict[str, Any]
    occurred_at: str
    correlation_id: str | None = None
    causation_id: str | None = None
    data: dict[str, Any]
    ts: datetime
    prev_hash: str | None = None
    hash: str | None = None
    redacted: dict[str, Any] | None = None  # retention's {by, hash}, see hash_chain.py

    class Settings:
        name = ARCHIVE_COLLECTION
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("position", ASCENDING)]),
            # A chain in order (audits, transcripts) and a conversation's messages newest
            # first (``messages.last``, read from here: no per-message read-model row).
            IndexModel([("tenant", ASCENDING), ("stream", ASCENDING), ("position", ASCENDING)]),
            IndexModel([("tenant", ASCENDING), ("ts", ASCENDING)]),
        ]


class ConversationVisitor(BaseModel):
    id: str | None = None
    name: str | None = None
    email: str | None = None
    page_url: str | None = None
    avatar_attachment_id: str | None = None  # a messaging platform's profile picture


class ConversationRating(BaseModel):
    score: int | None = None
    comment: str | None = None


class ConversationView(Document):
    """A conversation as the console lists it (collection ``conversations``).

    ``_id`` is ``tenant|conversation_id``; ``last_position`` is the log position of the
    last event folded into it (the idempotence guard, see read_models.py).
    """

    id: str  # type: ignore[assignment]
    conversation_id: str
    tenant: str
    status: str
    channel: str = "web"
    visitor: ConversationVisitor = ConversationVisitor()
    department: str | None = None
    topic: str | None = None
    agent_id: str | None = None
    created_at: datetime
    accepted_at: datetime | None = None
    closed_at: datetime | None = None
    last_message_at: datetime | None = None
    message_count: int = 0
    rating: ConversationRating | None = None
    last_position: int

    class Settings:
        name = "conversations"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [("tenant", ASCENDING), ("status", ASCENDING), ("last_position", DESCENDING)]
            ),
            IndexModel([("tenant", ASCENDING), ("visitor.id", ASCENDING)]),
        ]

    def public(self) -> dict[str, Any]:
        """The answer the gateway and the console read: stored fields, times in ISO 8601."""
        fields = self.model_dump(exclude={"id", "revision_id"})
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()}


class RetentionMark(Document):
    """A conversation whose contents retention has removed (collection ``retention``)."""

    id: str  # type: ignore[assignment]  # tenant|conversation_id
    tenant: str
    by: str  # the history.retention_applied event that records it
    at: datetime

    class Settings:
        name = "retention"


HISTORY_DOCUMENTS: tuple[type[Document], ...] = (
    ArchivedEvent,
    ConversationView,
    RetentionMark,
)
