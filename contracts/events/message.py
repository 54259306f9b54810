"""Chat content events: messages, attachments, system notes, typing, read receipts."""

from typing import Any, Literal

from pydantic import Field

from contracts.audience import Audience
from contracts.base import Body, EventData, Id, ShortText


class MessageSent(EventData):
    """A participant's message was accepted into a conversation.

    v2 added ``client_ts_ms`` (the sender's clock, used by the benchmark); v1 payloads
    are upcast by :func:`upcast_message_sent_v1_v2`.
    """

    TYPE = "message.sent"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    V = 2
    conversation_id: Id
    message_id: Id
    body: Body
    author_kind: Literal["customer", "agent", "system", "connector"]
    author_id: Id
    author_name: ShortText | None = None
    canned_response_id: Id | None = None
    client_ts_ms: int | None = None


def upcast_message_sent_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 had no ``client_ts_ms``; it is simply absent."""
    return {**data, "client_ts_ms": None}


class AttachmentSent(EventData):
    """A file in a conversation; ``caption`` is the text a platform user sent with it."""

    TYPE = "message.attachment_sent"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    conversation_id: Id
    message_id: Id
    attachment_id: Id
    filename: ShortText
    content_type: ShortText
    size: int = Field(ge=0)
    author_kind: Literal["customer", "agent", "connector"]
    author_id: Id
    # As the platform names the sender (Telegram groups: one conversation, several members).
    author_name: ShortText | None = None
    caption: Body | None = None


class MessageEdited(EventData):
    """A platform user edited a message they sent (Telegram ``edited_message``, Messenger
    ``message_edits``): ``message_id`` is the edited message, ``body`` its new text."""

    TYPE = "message.edited"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    conversation_id: Id
    message_id: Id
    edit_id: Id
    body: Body
    author_kind: Literal["customer"]
    author_id: Id


class SystemNote(EventData):
    """ "X has entered the chat", "X left", transfer notes, closed."""

    TYPE = "message.system"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    conversation_id: Id
    message_id: Id
    kind: Literal["joined", "left", "transferred", "closed", "queued", "missed", "notice"]
    text: ShortText


class TypingChanged(EventData):
    """Ephemeral: shown live, never stored as chat history."""

    TYPE = "typing.changed"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    conversation_id: Id
    who_kind: Literal["customer", "agent"]
    who_id: Id
    typing: bool


class MessageRead(EventData):
    """Ephemeral read receipt: the reader has seen everything up to ``message_id``."""

    TYPE = "message.read"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    conversation_id: Id
    message_id: Id
    reader_kind: Literal["customer", "agent"]
    reader_id: Id


MODELS = (MessageSent, AttachmentSent, MessageEdited, SystemNote, TypingChanged, MessageRead)
UPCASTERS = {("message.sent", 1): upcast_message_sent_v1_v2}
