"""Base classes for payloads: frozen, strict, with a type name and a version."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints

from contracts.audience import Audience

Id = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-@]+$")
]
ShortText = Annotated[str, StringConstraints(max_length=200)]
Body = Annotated[str, StringConstraints(max_length=8000)]


class Payload(BaseModel):
    """A payload model: ``TYPE`` and ``V`` name it in the registry."""

    # defer_build: ~160 payload models are declared; a process validates a few of them (a CLI
    # command one or two), and building every schema at import cost each process ~90 ms of
    # CPU before it did anything. Each schema is built on its model's first use instead.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    TYPE: ClassVar[str]
    V: ClassVar[int] = 1


class EventData(Payload):
    """Something that happened (past tense type name).

    ``DECIDED_BY`` names the service whose command decisions emit this type: declaring it
    is what makes that service record the event as the answer to the command that caused
    it, so a redelivered command is answered from the log instead of decided again (see
    relaydesk/decider.py). ``AUDIENCE`` says who may receive it on a websocket,
    ``NAMED_AGENT_FIELDS`` which fields name the agents of ``Audience.NAMED_AGENTS``, and
    ``WITHHELD_FROM`` which fields an audience does not get (contracts/audience.py).
    """

    DECIDED_BY: ClassVar[str | None] = None
    AUDIENCE: ClassVar[frozenset[Audience]] = frozenset()
    NAMED_AGENT_FIELDS: ClassVar[tuple[str, ...]] = ()
    WITHHELD_FROM: ClassVar[Mapping[Audience, frozenset[str]]] = MappingProxyType({})


class CommandData(Payload):
    """Something asked of the single writer that owns the decision (imperative).

    ``SERVICE`` is that writer: the command queue it goes to and the service whose log
    records answer it.
    """

    SERVICE: ClassVar[str]
