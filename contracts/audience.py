"""Who may receive an event on a websocket: each event type declares it.

Three class attributes of an event model (contracts/base.py ``EventData``) say it:

- ``AUDIENCE``: the audiences below. A socket receives the event when its principal
  belongs to at least one of them. A type that declares none is never sent to any socket
  (internal, or carrying secrets such as a password hash).
- ``NAMED_AGENT_FIELDS``: for ``NAMED_AGENTS``, the payload fields holding the agent ids
  the event is addressed to (an id or a list of ids).
- ``WITHHELD_FROM``: payload fields (dotted paths, e.g. ``visitor.email``) removed for a
  recipient who belongs *only* to audiences that withhold them; belonging to one audience
  that withholds nothing gives the whole event.

The gateway's fan-out (gateway/visibility.py) applies these; docs/protocol.md shows them
as a table, checked against these declarations by tests/foundation/test_docs.py.
"""

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any


class Audience(StrEnum):
    VISITOR = "visitor"
    """The customer of the conversation the event belongs to."""
    CONVERSATION_AGENTS = "conversation_agents"
    """The agent the conversation is assigned to and the agents it is offered to now."""
    NAMED_AGENTS = "named_agents"
    """The agents the event itself names, in the fields its ``NAMED_AGENT_FIELDS`` lists
    (an offer goes to the agents it is made to, not to everyone)."""
    SUPERVISORS = "supervisors"
    """Agents with the permission ``see_all_conversations`` (the supervisor, admin and
    owner roles, or granted by a permission group): they oversee every conversation."""
    TENANT_AGENTS = "tenant_agents"
    """Every signed-in agent of the tenant."""


def fields_withheld(
    withheld_from: Mapping[Audience, frozenset[str]], memberships: Iterable[Audience]
) -> frozenset[str] | None:
    """What a recipient belonging to ``memberships`` does not get of the event.

    None: not a recipient at all. Otherwise the fields every one of its audiences
    withholds (empty: the whole event) — the most any of its audiences may see.
    """
    hidden: frozenset[str] | None = None
    for audience in memberships:
        withheld = withheld_from.get(audience, frozenset())
        if not withheld:
            return frozenset()
        hidden = withheld if hidden is None else hidden & withheld
    return hidden


def without(data: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` without the fields at ``paths`` (dotted: ``visitor.email``)."""
    copy = dict(data)
    for path in paths:
        head, _, rest = path.partition(".")
        if head not in copy:
            continue
        if not rest:
            del copy[head]
        elif isinstance(copy[head], Mapping):
            copy[head] = without(copy[head], [rest])
    return copy
