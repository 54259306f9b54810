"""The registry: ``(type, v)`` → payload model, with upcasting of old versions."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from contracts.audience import Audience
from contracts.base import Payload
from contracts.commands import admin as admin_commands
from contracts.commands import billing as billing_commands
from contracts.commands import connector as connector_commands
from contracts.commands import conversation as conversation_commands
from contracts.commands import routing as routing_commands
from contracts.envelope import Envelope
from contracts.errors import FieldError, InvalidPayload, UnknownType
from contracts.events import (
    admin,
    audit,
    billing,
    connector,
    conversation,
    history,
    message,
    system,
)
from contracts.events import routing as routing_events
from contracts.events import signup as signup_events

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class Registry:
    """Maps type names to their current model and upcasts older payload versions.

    Args:
        models: payload classes, each with ``TYPE`` and ``V``.
        upcasters: ``(type, from_v)`` → function turning a ``from_v`` payload into
            ``from_v + 1``. Chains run until the model's current version.
    """

    def __init__(
        self, models: Iterable[type[Payload]], upcasters: Mapping[tuple[str, int], Upcaster]
    ) -> None:
        self._models: dict[str, type[Payload]] = {}
        for model in models:
            if model.TYPE in self._models:
                raise ValueError(f"type {model.TYPE!r} registered twice")
            self._models[model.TYPE] = model
        self._upcasters = dict(upcasters)

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._models

    def names(self) -> list[str]:
        return sorted(self._models)

    def model_for(self, type_name: str) -> type[Payload]:
        try:
            return self._models[type_name]
        except KeyError:
            raise UnknownType(f"unknown type {type_name!r}", type_name=type_name) from None

    def parse(self, type_name: str, v: int, data: Mapping[str, Any]) -> Payload:
        """Validate ``data`` of version ``v`` and return the current-version model.

        Raises:
            UnknownType: no model for the name, or a version newer than we know.
            InvalidPayload: the data does not fit the model.
        """
        model = self.model_for(type_name)
        if v > model.V:
            raise UnknownType(
                f"{type_name} v{v} is newer than supported v{model.V}", type_name=type_name
            )
        payload = dict(data)
        for from_v in range(v, model.V):
            upcast = self._upcasters.get((type_name, from_v))
            if upcast is None:
                raise UnknownType(f"no upcaster for {type_name} v{from_v}", type_name=type_name)
            payload = upcast(payload)
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            errors = [FieldError(loc=list(e["loc"]), msg=e["msg"]) for e in exc.errors()]
            raise InvalidPayload(
                f"invalid {type_name}: {errors[0]['msg']} at {errors[0]['loc']}",
                type_name=type_name,
                errors=errors,
            ) from None

    def parse_envelope(self, envelope: Envelope) -> Payload:
        return self.parse(envelope.type, envelope.v, envelope.data)

    def audience(self, type_name: str) -> frozenset[Audience]:
        """Who may receive events of this type on a socket; nobody for unknown types."""
        return getattr(self._models.get(type_name), "AUDIENCE", frozenset())

    def named_agent_fields(self, type_name: str) -> tuple[str, ...]:
        """The fields naming the agents of ``Audience.NAMED_AGENTS`` for this type."""
        return getattr(self._models.get(type_name), "NAMED_AGENT_FIELDS", ())

    def withheld_from(self, type_name: str) -> Mapping[Audience, frozenset[str]]:
        """The fields each audience does not receive of this type (contracts/audience.py)."""
        return getattr(self._models.get(type_name), "WITHHELD_FROM", {})

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"v": m.V, "schema": m.model_json_schema()}
            for name, m in sorted(self._models.items())
        }


EVENTS = Registry(
    (
        *conversation.MODELS,
        *message.MODELS,
        *admin.MODELS,
        *connector.MODELS,
        *billing.MODELS,
        *history.MODELS,
        *audit.MODELS,
        *system.MODELS,
        *routing_events.MODELS,
        *signup_events.MODELS,
    ),
    {**message.UPCASTERS},
)
COMMANDS = Registry(
    (
        *conversation_commands.MODELS,
        *routing_commands.MODELS,
        *admin_commands.MODELS,
        *connector_commands.MODELS,
        *billing_commands.MODELS,
    ),
    {},
)


def parse_event_data(envelope: Envelope) -> Payload:
    """Validate an event envelope's data against the event registry."""
    return EVENTS.parse_envelope(envelope)


def parse_command_data(envelope: Envelope) -> Payload:
    """Validate a command envelope's data against the command registry."""
    return COMMANDS.parse_envelope(envelope)
