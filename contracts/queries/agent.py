"""Queries answered by routing (service ``agent``): its folded state, read only."""

from typing import Literal

from contracts.queries.base import Answer, TenantQuery

SERVICE = "agent"
Status = Literal["queued", "offered", "engaged", "transfer_pending", "closed", "missed"]


class ConversationState(Answer):
    """A conversation as routing knows it now."""

    conversation_id: str
    status: Status
    agent_id: str | None
    offered_to: list[str]  # agents it stands offered to, sorted
    visitor_id: str
    channel: str
    department: str | None
    queue_position: int | None  # 1 = next; None when not queued
    transfer_from: str | None  # the agent handing it over, while a transfer is pending


class AgentStatus(Answer):
    agent_id: str
    name: str | None
    status: str  # online / away / offline
    connected: bool  # False while a disconnect grace period runs
    active_chats: int
    pending_offers: int
    max_chats: int  # their own limit, else the tenant's max_chats_default
    available: bool  # online, connected and with room: would be offered a chat now


class ConversationStateQuery(TenantQuery[ConversationState]):
    """One conversation; ``not_found`` when routing does not know it."""

    NAME = "conversation.state"
    SERVICE = SERVICE
    conversation_id: str


class QueueQuery(TenantQuery[list[ConversationState]]):
    """Queued conversations in order with their positions, then missed ones (no position)."""

    NAME = "queue"
    SERVICE = SERVICE


class AgentsStatusQuery(TenantQuery[list[AgentStatus]]):
    """Every agent of the tenant (not removed), by agent id."""

    NAME = "agents.status"
    SERVICE = SERVICE


QUERIES = (ConversationStateQuery, QueueQuery, AgentsStatusQuery)
