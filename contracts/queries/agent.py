"""Queries answered by routing (service ``agent``): its folded state, read only."""

from datetime import datetime
from typing import Literal

from contracts.base import Id
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
    connected: bool  # their console is connected (False after a lost connection, until back)
    active_chats: int
    pending_offers: int
    max_chats: int  # their own limit, else the tenant's max_chats_default
    available: bool  # online, connected and with room: would be offered a chat now


class WorkspaceConversation(Answer):
    """A conversation on an agent's console: an offer, one of their chats, or a waiting one.

    ``transfer_from`` / ``transfer_from_name`` / ``transfer_note``: on an offer, the agent
    handing the chat over and their note (for the receiver, never the customer); on a chat
    taken over by a transfer, the same, kept until it closes.
    """

    conversation_id: str
    status: Status
    agent_id: str | None
    visitor_name: str | None
    topic: str | None
    channel: str
    department: str | None
    requested_at: datetime | None  # when the customer asked (the console's "waiting" clock)
    offer_expires_at: datetime | None  # on an offer: when it is withdrawn unanswered
    queue_position: int | None
    transfer_from: str | None
    transfer_from_name: str | None
    transfer_note: str | None
    transfer_to: list[str]  # on the sender's chat while its transfer is pending: offered to
    unread: int  # customer messages after this agent's last read (message.read on the log)


class AgentWorkspace(Answer):
    """An agent's live console state as routing (the single writer) decided it.

    ``position``: the log position folded so far. The console applies the events it
    receives after this position on top (events up to it are already in the answer), so
    the state at load and the live stream meet without a gap or a repeat.
    """

    position: int | None
    offers: list[WorkspaceConversation]  # standing offers to this agent, oldest request first
    chats: list[WorkspaceConversation]  # engaged with this agent (or transfer pending from them)
    queue: list[WorkspaceConversation]  # waiting: queued in order, then missed


class ConversationStateQuery(TenantQuery[ConversationState]):
    """One conversation; ``not_found`` when routing does not know it."""

    NAME = "conversation.state"
    SERVICE = SERVICE
    conversation_id: str


class VisitorConversationQuery(TenantQuery[ConversationState]):
    """The visitor's latest conversation unless it is closed; ``not_found`` otherwise.

    Answered by routing, which decided it: a widget reloading right after a request or
    accept finds its conversation even while history's read model lags behind the log.
    """

    NAME = "visitor.conversation"
    SERVICE = SERVICE
    visitor_id: str


class QueueQuery(TenantQuery[list[ConversationState]]):
    """Queued conversations in order with their positions, then missed ones (no position)."""

    NAME = "queue"
    SERVICE = SERVICE


class AgentsStatusQuery(TenantQuery[list[AgentStatus]]):
    """Every agent of the tenant (not removed), by agent id."""

    NAME = "agents.status"
    SERVICE = SERVICE


class AgentWorkspaceQuery(TenantQuery[AgentWorkspace]):
    """One agent's offers, chats and the tenant's queue, with the log position they stand at."""

    NAME = "agent.workspace"
    SERVICE = SERVICE
    agent_id: Id


QUERIES = (
    ConversationStateQuery,
    VisitorConversationQuery,
    QueueQuery,
    AgentsStatusQuery,
    AgentWorkspaceQuery,
)
