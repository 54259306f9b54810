"""Who may receive an event on a websocket: each event type declares it (``AUDIENCE``).

The gateway's fan-out filter reads these declarations (gateway/visibility.py); an event
type that declares no audience is never sent to any socket (internal, or carrying secrets).
"""

from enum import StrEnum


class Audience(StrEnum):
    VISITOR = "visitor"
    """The customer of the conversation the event belongs to."""
    CONVERSATION_AGENTS = "conversation_agents"
    """The agent handling the conversation, agents it is offered to, and supervisors
    (permission ``see_all_conversations``)."""
    TENANT_AGENTS = "tenant_agents"
    """Every signed-in agent of the tenant."""
