"""The client ops' frames as docs/protocol.md defines them, validated strictly.

Nothing is coerced and nothing unknown passes: ``typing: "no"`` is not true, a missing
``typing`` is not false, ``client_ts_ms: "soon"`` is not dropped, ``visitor: "x"`` or
``name: 12345`` do not start a conversation without a name, and a field the op does not
have is refused rather than ignored. A refusal names the field (``OpError.field``).
Field types are the contracts' (``contracts.base``): what passes here is what the event
or command it becomes accepts.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from contracts.base import Body, Id, ShortText

MAX_KEY_LENGTH = 64
Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=8000)]


class FrameError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    op: str
    id: Key


class ConversationFrame(Frame):
    conversation_id: Id


class VisitorFields(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    name: ShortText | None = None
    email: ShortText | None = None
    page_url: str | None = Field(default=None, max_length=2000)


class StartFrame(Frame):
    visitor: VisitorFields | None = None
    department: Id | None = None
    topic: ShortText | None = None


class SendFrame(ConversationFrame):
    body: Body
    client_ts_ms: int | None = None
    canned_response_id: Id | None = None  # agents only; a customer's is ignored


class TypingFrame(ConversationFrame):
    typing: bool


class ReadFrame(ConversationFrame):
    message_id: Id


class RetryDeliveryFrame(ConversationFrame):
    message_id: Id


class CloseFrame(ConversationFrame):
    reason: ShortText | None = None


class RateFrame(ConversationFrame):
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


class ContactFrame(ConversationFrame):
    email: ShortText


class StatusFrame(Frame):
    status: Literal["online", "away", "offline"]
    max_chats: int | None = Field(default=None, ge=1, le=100)


class TransferFrame(ConversationFrame):
    to_agent_id: Id | None = None
    to_group: ShortText | None = None  # a group's id or its name (gateway/ops.py)
    note: ShortText | None = None


FRAMES: dict[str, type[Frame]] = {
    "start": StartFrame,
    "send": SendFrame,
    "typing": TypingFrame,
    "read": ReadFrame,
    "close": CloseFrame,
    "rate": RateFrame,
    "contact": ContactFrame,
    "status": StatusFrame,
    "accept": ConversationFrame,
    "decline": ConversationFrame,
    "transfer": TransferFrame,
    "retry_delivery": RetryDeliveryFrame,
}


def parse_frame(op: str, frame: dict[str, Any]) -> Frame:
    """The op's frame, or :class:`FrameError` naming the first field that is wrong."""
    try:
        return FRAMES[op].model_validate(frame)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "frame"
        if first["type"] == "missing":
            message = f"{field} is required"
        elif first["type"] == "extra_forbidden":
            message = f"{field} is not a field of {op!r}"
        else:
            message = f"{field}: {first['msg']}"
        raise FrameError(field, message) from None
