"""Which events answer which service's commands, read from the declarations on the classes.

An event class declares ``DECIDED_BY``: the service whose command decisions emit it. A
command class declares ``SERVICE``: its single writer. From these two declarations alone
anyone folding the log (the services, replay and export tools) can tell which command an
event answered, so a redelivered command is answered from the log, never decided twice.
There is no separate list of "decision types" to keep in step (relaydesk/decider.py).
"""

from functools import cache

from contracts.envelope import Envelope
from contracts.events.admin import CommandRejected
from contracts.registry import COMMANDS, EVENTS


def decided_by(type_name: str) -> str | None:
    """The service whose decisions emit events of this type; None for any other type.

    Raises:
        UnknownType: no event type of that name is registered.
    """
    decider: str | None = getattr(EVENTS.model_for(type_name), "DECIDED_BY", None)
    return decider


def command_service(type_name: str) -> str | None:
    """The single writer of commands of this type; None for an unknown command type."""
    if type_name not in COMMANDS:
        return None
    service: str | None = getattr(COMMANDS.model_for(type_name), "SERVICE", None)
    return service


@cache
def decision_types(service: str) -> frozenset[str]:
    """Every event type ``service`` declares it emits as a decision (without rejections)."""
    return frozenset(name for name in EVENTS.names() if decided_by(name) == service)


def answered_command(event: Envelope, service: str) -> str | None:
    """The id of ``service``'s command this event answers, or None.

    An event answers a command when it was caused by one (``causation_id``) and either its
    type is declared ``DECIDED_BY`` the service, or it is a ``command.rejected`` of a
    command type whose ``SERVICE`` is the service.
    """
    if event.causation_id is None:
        return None
    if event.type == CommandRejected.TYPE:
        command_type = event.data.get("command_type")
        if isinstance(command_type, str) and command_service(command_type) == service:
            return event.causation_id
        return None
    return event.causation_id if event.type in decision_types(service) else None
