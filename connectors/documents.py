"""The connectors' MongoDB documents: platform conversations, seen platform ids, the outbox,
and the snapshot of their fold of the log (collection ``connectors_state_snapshots``,
relaydesk/snapshots.py and connectors/snapshot.py)."""

from datetime import datetime
from typing import Any, ClassVar

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, IndexModel

from relaydesk.snapshots import snapshot_documents

SEEN_TTL_S = 48 * 3600  # ≥ Telegram's 24 h retention; Meta retries for less
# An edit of an older message goes to the chat's current conversation (as before this was
# kept): platforms let users edit for long, but edits of month-old messages are rare.
MESSAGE_TTL_S = 30 * 24 * 3600


class PlatformConversationDocument(Document):
    """Which conversation a platform chat is in (``_id`` = ``tenant|connector|chat``).

    ``platform_user_id`` is the user whose message opened it (in a group, others write too).
    """

    id: str  # type: ignore[assignment]
    tenant: str
    connector_id: str
    platform: str
    platform_user_id: str
    conversation_id: str
    chat_ref: str
    generation: int = 0
    closed: bool = False
    rating_pending: bool = False  # asked to rate the closed conversation, no answer yet
    at: float | None = None  # when the mapping was last (re)opened, epoch seconds
    last_inbound: float | None = None  # the user's last message (Messenger's 24-hour window)

    class Settings:
        name = "connector_conversations"
        # outbound replies and closes find the mapping by its conversation
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("conversation_id", ASCENDING)])]


class SeenPlatformId(Document):
    """A platform update id already taken in; forgotten after :data:`SEEN_TTL_S`."""

    id: str  # type: ignore[assignment]
    at: datetime

    class Settings:
        name = "connector_seen"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("at", ASCENDING)], expireAfterSeconds=SEEN_TTL_S)
        ]


class PlatformMessage(Document):
    """Which conversation a platform user's message went into (``_id`` =
    ``tenant|connector|message ref``, the ref its edits name): an edit goes there, even once
    the chat has moved on to another conversation. Forgotten after :data:`MESSAGE_TTL_S`."""

    id: str  # type: ignore[assignment]
    conversation_id: str
    at: datetime

    class Settings:
        name = "connector_messages"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("at", ASCENDING)], expireAfterSeconds=MESSAGE_TTL_S)
        ]


class OutboxItem(Document):
    """A reply to send to a platform (``_id`` = the message id: queued once per message).

    Every field but ``done`` is optional: a reply whose ``connector.outbound_sent`` is read
    before its ``message.sent`` (a replay) is finished before it was queued, and that leaves
    a document with ``done`` only, which keeps it from ever being queued and sent again.
    """

    id: str  # type: ignore[assignment]
    tenant: str | None = None
    connector_id: str | None = None
    platform: str | None = None
    conversation_id: str | None = None
    chat_ref: str | None = None
    body: str | None = None
    kind: str | None = None  # None/"text": body; "attachment": the file; "rating": a rating request
    attachment: dict[str, Any] | None = None  # attachment_id, filename, content_type, size
    queued_at: float | None = None
    last_inbound: float | None = None
    attempts: int = 0
    parts_sent: list[str] = Field(
        default_factory=list
    )  # platform ids of the parts already sent (a split reply)
    platform_message_id: str | None = None  # set once every part was sent
    failure_reported: bool = False
    # A permanent failure parks the reply and the conversation's later ones (never dropped):
    # "credentials" (the connector was refused: all its replies wait for new credentials) or
    # "message" (the agent retries it; ``parked_behind``: held behind that earlier parked
    # reply, released with it). Each retry or unparking starts a new round.
    parked: bool = False
    parked_kind: str | None = None
    parked_reason: str | None = None
    parked_behind: str | None = None
    round: int = 0
    # The connector was removed: reported as failed, never sent (its id may be another's next).
    connector_removed: bool = False
    done: bool = False

    class Settings:
        name = "connector_outbox"
        indexes: ClassVar[list[IndexModel]] = [IndexModel([("connector_id", ASCENDING)])]


CONNECTOR_DOCUMENTS: tuple[type[Document], ...] = (
    PlatformConversationDocument,
    SeenPlatformId,
    PlatformMessage,
    OutboxItem,
)

SNAPSHOTS = "connectors_state_snapshots"

ConnectorsSnapshotChunk, ConnectorsSnapshotMeta = snapshot_documents(
    SNAPSHOTS, "Connectors", __name__
)
