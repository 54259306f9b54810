"""Audience declarations hold together: what they name exists on the event they declare.

A misspelt field in ``WITHHELD_FROM`` would silently withhold nothing; one in
``NAMED_AGENT_FIELDS`` would silently reach nobody. These checks fail instead.
"""

from typing import Any

import pytest
from pydantic import BaseModel

from contracts.audience import Audience
from contracts.base import EventData
from contracts.registry import EVENTS

MODELS: list[type[EventData]] = [EVENTS.model_for(name) for name in EVENTS.names()]  # type: ignore[misc]


def _field_at(model: type[BaseModel], path: str) -> Any:
    """The annotation of the field at a dotted path, or None when there is none."""
    head, _, rest = path.partition(".")
    field = model.model_fields.get(head)
    if field is None:
        return None
    if not rest:
        return field.annotation
    nested = next(
        (
            t
            for t in (field.annotation, *getattr(field.annotation, "__args__", ()))
            if isinstance(t, type) and issubclass(t, BaseModel)
        ),
        None,
    )
    return _field_at(nested, rest) if nested is not None else None


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.TYPE)
def test_withheld_fields_exist_and_belong_to_a_declared_audience(model: type[EventData]) -> None:
    for audience, paths in model.WITHHELD_FROM.items():
        assert audience in model.AUDIENCE, f"{model.TYPE} withholds from undeclared {audience}"
        assert paths, f"{model.TYPE}: an empty withholding for {audience} means nothing"
        for path in paths:
            assert _field_at(model, path) is not None, f"{model.TYPE} has no field {path!r}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.TYPE)
def test_named_agents_are_declared_by_fields_of_the_event(model: type[EventData]) -> None:
    named = Audience.NAMED_AGENTS in model.AUDIENCE
    assert bool(model.NAMED_AGENT_FIELDS) == named, (
        f"{model.TYPE}: NAMED_AGENTS and NAMED_AGENT_FIELDS go together"
    )
    for name in model.NAMED_AGENT_FIELDS:
        assert name in model.model_fields, f"{model.TYPE} has no field {name!r}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.TYPE)
def test_conversation_audiences_are_declared_by_conversation_events(
    model: type[EventData],
) -> None:
    """The visitor and the agents of a conversation are found through its id."""
    if model.AUDIENCE & {Audience.VISITOR, Audience.CONVERSATION_AGENTS}:
        assert "conversation_id" in model.model_fields, model.TYPE
