"""Conversation lifecycle events: request, queue, offer, accept, transfer, close."""

from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.audience import Audience
from contracts.base import EventData, Id, ShortText

Channel = Literal["web", "telegram", "messenger", "wechat", "api"]


class VisitorInfo(BaseModel):
    """What the customer told us (pre-chat form, platform profile)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: Id
    name: ShortText | None = None
    email: ShortText | None = None
    page_url: str | None = Field(default=None, max_length=2000)
    platform_user_id: ShortText | None = None
    # the profile picture a messaging platform gave, stored as an attachment of the conversation
    avatar_attachment_id: Id | None = None


class ConversationRequested(EventData):
    """A customer opened a conversation; it waits for routing."""

    TYPE = "conversation.requested"
    DECIDED_BY = "agent"
    # Every agent learns that someone waits (queue views refresh on it) with the name the
    # visitor gave, topic, channel and department; how to reach the visitor outside the chat
    # is for the agent handling the conversation and supervisors only.
    AUDIENCE = frozenset(
        {
            Audience.VISITOR,
            Audience.CONVERSATION_AGENTS,
            Audience.SUPERVISORS,
            Audience.TENANT_AGENTS,
        }
    )
    WITHHELD_FROM = MappingProxyType(
        {
            Audience.TENANT_AGENTS: frozenset(
                {"visitor.email", "visitor.page_url", "visitor.platform_user_id"}
            )
        }
    )
    conversation_id: Id
    channel: Channel = "web"
    visitor: VisitorInfo
    department: Id | None = None
    topic: ShortText | None = None


class ConversationQueued(EventData):
    """The conversation waits; ``position`` is its place in the tenant's queue (1-based)."""

    TYPE = "conversation.queued"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.TENANT_AGENTS})
    conversation_id: Id
    position: int = Field(ge=0)
    reason: Literal["waiting", "declined", "offer_timeout", "agent_disconnected", "requeued"] = (
        "waiting"
    )


class ConversationOffered(EventData):
    """Routing offered the conversation to these agents (broadcast) or one (auto)."""

    TYPE = "conversation.offered"
    DECIDED_BY = "agent"
    # An offer is between routing and the agents it is made to (and the transferring agent).
    AUDIENCE = frozenset({Audience.NAMED_AGENTS, Audience.SUPERVISORS})
    NAMED_AGENT_FIELDS = ("agent_ids", "transfer_from")
    conversation_id: Id
    agent_ids: tuple[Id, ...]
    expires_in_s: int = Field(default=60, ge=1)
    transfer_from: Id | None = None


class OfferWithdrawn(EventData):
    """Offers to these agents no longer stand (someone accepted, or the offer expired)."""

    TYPE = "conversation.offer_withdrawn"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.NAMED_AGENTS, Audience.SUPERVISORS})
    NAMED_AGENT_FIELDS = ("agent_ids",)
    conversation_id: Id
    agent_ids: tuple[Id, ...]
    reason: Literal["accepted_by_other", "expired", "closed", "agent_offline"]


class OfferDeclined(EventData):
    TYPE = "conversation.offer_declined"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.NAMED_AGENTS, Audience.SUPERVISORS})
    NAMED_AGENT_FIELDS = ("agent_id",)
    conversation_id: Id
    agent_id: Id


class ConversationAccepted(EventData):
    """The first valid accept won: the conversation is engaged with this agent."""

    TYPE = "conversation.accepted"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.TENANT_AGENTS})
    conversation_id: Id
    agent_id: Id
    agent_name: ShortText | None = None


class TransferRequested(EventData):
    TYPE = "conversation.transfer_requested"
    DECIDED_BY = "agent"
    # The note is for the colleague taking over (and supervisors), not the whole team.
    AUDIENCE = frozenset({Audience.NAMED_AGENTS, Audience.SUPERVISORS})
    NAMED_AGENT_FIELDS = ("from_agent_id", "to_agent_id")
    conversation_id: Id
    from_agent_id: Id
    to_agent_id: Id | None = None
    to_group: Id | None = None
    note: ShortText | None = None


class TransferReturned(EventData):
    """A pending transfer ended with nobody taking it: the chat stays with the agent who
    asked, and they are told why (``declined`` by ``by_agent_id``, offer ``expired``, the
    receiver went ``agent_offline``). An accepted one is ``conversation.transferred``."""

    TYPE = "conversation.transfer_returned"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.NAMED_AGENTS, Audience.SUPERVISORS})
    NAMED_AGENT_FIELDS = ("from_agent_id",)
    conversation_id: Id
    from_agent_id: Id
    reason: Literal["declined", "expired", "agent_offline"]
    by_agent_id: Id | None = None


class ConversationTransferred(EventData):
    TYPE = "conversation.transferred"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.TENANT_AGENTS})
    conversation_id: Id
    from_agent_id: Id
    to_agent_id: Id
    # the receiver's name, as on conversation.accepted: the widget's header names who helps
    agent_name: ShortText | None = None


class ConversationClosed(EventData):
    TYPE = "conversation.closed"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.TENANT_AGENTS})
    conversation_id: Id
    closed_by: Literal["customer", "agent", "system"]
    reason: ShortText | None = None


class ConversationMissed(EventData):
    """No agent was available; the customer's messages stay for follow-up."""

    TYPE = "conversation.missed"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.TENANT_AGENTS})
    conversation_id: Id
    reason: Literal["no_agent_online", "outside_business_hours", "over_limit"] = "no_agent_online"


class ConversationRated(EventData):
    TYPE = "conversation.rated"
    DECIDED_BY = "agent"
    # Feedback on one agent's work: for that agent and supervisors, not their colleagues.
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    conversation_id: Id
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


class ContactProvided(EventData):
    """The customer left a way to reach them (the widget's offline form): a missed
    conversation can be answered by email after the customer is gone."""

    TYPE = "conversation.contact_provided"
    conversation_id: Id
    email: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class AgentDisconnected(EventData):
    """The engaged agent's last socket went away; grace period running."""

    TYPE = "conversation.agent_disconnected"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    conversation_id: Id
    agent_id: Id
    grace_s: int = Field(ge=0)


class AgentReconnected(EventData):
    """The engaged agent whose lost connection was reported is back (their console set its
    status again within the grace): the chat goes on with them."""

    TYPE = "conversation.agent_reconnected"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    conversation_id: Id
    agent_id: Id
    agent_name: str | None = Field(default=None, max_length=200)


MODELS = (
    ConversationRequested,
    ConversationQueued,
    ConversationOffered,
    OfferWithdrawn,
    OfferDeclined,
    ConversationAccepted,
    TransferRequested,
    TransferReturned,
    ConversationTransferred,
    ConversationClosed,
    ConversationMissed,
    ConversationRated,
    AgentDisconnected,
    AgentReconnected,
    ContactProvided,
)
