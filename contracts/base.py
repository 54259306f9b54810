"""Base classes for payloads: frozen, strict, with a type name and a version."""

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints

Id = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-@]+$")
]
ShortText = Annotated[str, StringConstraints(max_length=200)]
Body = Annotated[str, StringConstraints(max_length=8000)]


class Payload(BaseModel):
    """A payload model: ``TYPE`` and ``V`` name it in the registry."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TYPE: ClassVar[str]
    V: ClassVar[int] = 1


class EventData(Payload):
    """Something that happened (past tense type name)."""


class CommandData(Payload):
    """Something asked of the single writer that owns the decision (imperative)."""
