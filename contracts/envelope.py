"""The envelope every event and command travels in (design decision 7)."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.ids import new_event_id

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-@]+$")
]
TypeName = Annotated[
    str, StringConstraints(min_length=3, max_length=64, pattern=r"^[a-z_]+(\.[a-z_]+)+$")
]


class ActorKind(StrEnum):
    customer = "customer"
    agent = "agent"
    admin = "admin"
    connector = "connector"
    system = "system"


class Actor(BaseModel):
    """Who caused an event: a kind and an id within the tenant."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ActorKind
    id: Name


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """One event or command on the bus.

    Attributes:
        id: unique, time-ordered (or derived from an idempotency key on resend).
        type: dotted type name, past tense for events (``message.sent``), imperative
            for commands (``conversation.accept``).
        v: schema version of ``data``.
        tenant: the account the event belongs to; also the first routing-key word.
        stream: the aggregate it belongs to (``conv:<id>``, ``agent:<id>``, ``tenant``).
        data: the typed payload as a plain dict; validate with the registry.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: Annotated[str, StringConstraints(min_length=8, max_length=64)] = Field(
        default_factory=new_event_id
    )
    type: TypeName
    v: Annotated[int, Field(ge=1, le=1000)] = 1
    tenant: Name
    stream: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    actor: Actor
    occurred_at: datetime = Field(default_factory=_utcnow)
    correlation_id: str | None = None
    causation_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        return f"{self.tenant}.{self.type}"


class LoggedEvent(BaseModel):
    """An envelope as read back from the log, with its global position."""

    model_config = ConfigDict(frozen=True)
    position: int
    envelope: Envelope
    # The envelope's JSON exactly as it stands in the log, when read from it: fan-out
    # forwards it to sockets without serialising the event again.
    body: bytes | None = Field(default=None, exclude=True, repr=False)
    # The W3C trace context its publisher was in, when tracing is on (relaydesk/tracing.py);
    # not part of the event: never serialised, never sent to clients.
    traceparent: str | None = Field(default=None, exclude=True, repr=False)
