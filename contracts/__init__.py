"""relaydesk contracts: the envelope, every event and command type, and topology names.

See docs/contracts.md. Everything here is a frozen, versioned pydantic model; the
registry maps ``(type, v)`` to its model and upcasts old versions on read.
"""

from contracts.envelope import Actor, ActorKind, Envelope, LoggedEvent
from contracts.errors import ContractError, InvalidPayload, UnknownType
from contracts.ids import derive_event_id, new_event_id
from contracts.registry import (
    COMMANDS,
    EVENTS,
    Registry,
    parse_command_data,
    parse_event_data,
)

__all__ = [
    "COMMANDS",
    "EVENTS",
    "Actor",
    "ActorKind",
    "ContractError",
    "Envelope",
    "InvalidPayload",
    "LoggedEvent",
    "Registry",
    "UnknownType",
    "derive_event_id",
    "new_event_id",
    "parse_command_data",
    "parse_event_data",
]
