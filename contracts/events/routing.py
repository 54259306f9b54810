"""Routing events owned by agent_service that are about an agent rather than a conversation."""

from pydantic import Field

from contracts.audience import Audience
from contracts.base import EventData, Id


class AgentConnectionLost(EventData):
    """The agent's last socket went away; their chats wait ``grace_s`` for them to return.

    Any later event whose actor is this agent (a status change, an accept, a message)
    means they are back. Without a return, their conversations go back to the queue.
    """

    TYPE = "agent.disconnected"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.TENANT_AGENTS})
    agent_id: Id
    grace_s: int = Field(ge=0)


MODELS = (AgentConnectionLost,)
