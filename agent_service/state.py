"""Routing state: what agent_service knows, folded from the log (see fold.py).

Plain mutable dataclasses, owned by one task at a time (the fold loop and the command
handler run on one event loop and never await while changing state).
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.replies import CommandReply
from contracts.settings import default_settings

# Conversation statuses.
QUEUED, OFFERED, ENGAGED, TRANSFER_PENDING, CLOSED, MISSED = (
    "queued",
    "offered",
    "engaged",
    "transfer_pending",
    "closed",
    "missed",
)
WAITING = (QUEUED, MISSED)  # no agent has it and no offer stands


@dataclass
class Agent:
    agent_id: str
    name: str | None = None
    status: str = "offline"
    max_chats: int | None = None  # None: the tenant's max_chats_default
    groups: tuple[str, ...] = ()
    active: set[str] = field(default_factory=set)  # engaged conversation ids
    offers: set[str] = field(default_factory=set)  # conversations offered to them now
    disconnected_at: datetime | None = None
    grace_s: int = 0
    removed: bool = False
    # Their console is connected: they acted themselves (a console sets its status when it
    # connects) since their last lost connection. Not the status: a grace that runs out sets
    # them offline, and an agent may choose "offline" with the console open.
    connected: bool = False


@dataclass
class Conversation:
    conversation_id: str
    visitor_id: str
    channel: str
    department: str | None
    seq: int  # arrival order in the tenant: the queue order
    status: str = QUEUED
    agent_id: str | None = None
    offered_to: set[str] = field(default_factory=set)
    declined_by: set[str] = field(default_factory=set)
    expired_for: set[str] = field(default_factory=set)  # offers that timed out unanswered
    offer_expires_at: datetime | None = None
    transfer_from: str | None = None
    transfer_note: str | None = (
        None  # the transferring agent's note, told in the chat when the transfer is accepted
    )
    visitor_name: str | None = None  # for "X left the chat" when the customer ends it
    topic: str | None = None  # what the customer chose in the pre-chat form (console cards)
    requested_at: datetime | None = None
    last_customer_at: datetime | None = None  # the request or the customer's latest message
    customer_messages: int = 0  # messages and attachments the customer sent
    last_customer_message_id: str | None = None
    read_by: dict[str, int] = field(
        default_factory=dict
    )  # agent id -> customer messages read (message.read): unread survives reloads and devices
    handover_from: str | None = None  # the agent who transferred it to the current one
    handover_note: str | None = None  # their note, for the receiving agent only
    position: int | None = None
    rated: bool = False
    closed_at: datetime | None = None


@dataclass
class Group:
    group_id: str
    departments: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()


@dataclass
class Tenant:
    tenant_id: str
    # contracts.settings.TenantSettings as JSON values: the defaults, changes folded over them
    settings: dict[str, Any] = field(default_factory=default_settings)
    agents: dict[str, Agent] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    open_ids: set[str] = field(default_factory=set)  # not closed: what queue scans look at
    # visitor id -> their latest conversation: a reloaded widget resumes it (queries.py),
    # from the decider's state rather than a read model that may lag behind the log
    latest_by_visitor: dict[str, str] = field(default_factory=dict)
    next_seq: int = 0
    last_single_offer: str | None = None  # round-robin cursor: last agent offered alone
    mode: str = "tool"  # "saas" tenants have a plan whose conversation limit routing enforces
    plan: str | None = None
    requests_by_period: dict[str, int] = field(
        default_factory=dict
    )  # "YYYY-MM" -> conversations requested

    def agent(self, agent_id: str) -> Agent:
        """The agent, created on first sight (status events may precede admin events)."""
        found = self.agents.get(agent_id)
        if found is None:
            found = self.agents[agent_id] = Agent(agent_id)
        return found

    def capacity(self, agent: Agent) -> int:
        return agent.max_chats or int(self.settings["max_chats_default"])

    def queued(self) -> list[Conversation]:
        """Conversations waiting in the queue, in arrival order."""
        return self._open_with(QUEUED)

    def _open_with(self, status: str) -> list[Conversation]:
        found = (self.conversations[c] for c in self.open_ids)
        return sorted((c for c in found if c.status == status), key=lambda c: c.seq)

    def offered(self) -> list[Conversation]:
        """Conversations with a standing offer (not transfers), in arrival order."""
        return self._open_with(OFFERED)

    def waiting(self) -> list[Conversation]:
        """Queued first, then missed ones (they can still be picked up), each in arrival order."""
        return self._open_with(QUEUED) + self._open_with(MISSED)


@dataclass
class RoutingState:
    """Everything folded so far, plus the outcome of every command already decided."""

    tenants: dict[str, Tenant] = field(default_factory=dict)
    replies: dict[str, CommandReply] = field(default_factory=dict)  # command id → outcome
    position: int | None = None

    def tenant(self, tenant_id: str) -> Tenant:
        found = self.tenants.get(tenant_id)
        if found is None:
            found = self.tenants[tenant_id] = Tenant(tenant_id)
        return found
