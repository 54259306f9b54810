"""Commands owned by agent_service: routing decisions for conversations and agents."""

from typing import Literal

from pydantic import Field

from contracts.base import CommandData, Id, ShortText
from contracts.events.conversation import Channel, VisitorInfo


class RequestConversation(CommandData):
    TYPE = "conversation.request"
    SERVICE = "agent"
    conversation_id: Id
    channel: Channel = "web"
    visitor: VisitorInfo
    department: Id | None = None
    topic: ShortText | None = None


class AcceptConversation(CommandData):
    TYPE = "conversation.accept"
    SERVICE = "agent"
    conversation_id: Id
    agent_id: Id


class DeclineConversation(CommandData):
    TYPE = "conversation.decline"
    SERVICE = "agent"
    conversation_id: Id
    agent_id: Id


class TransferConversation(CommandData):
    TYPE = "conversation.transfer"
    SERVICE = "agent"
    conversation_id: Id
    from_agent_id: Id
    to_agent_id: Id | None = None
    to_group: Id | None = None
    note: ShortText | None = None


class CloseConversation(CommandData):
    TYPE = "conversation.close"
    SERVICE = "agent"
    conversation_id: Id
    closed_by: Literal["customer", "agent", "system"]
    reason: ShortText | None = None


class RateConversation(CommandData):
    TYPE = "conversation.rate"
    SERVICE = "agent"
    conversation_id: Id
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


class SetAgentStatus(CommandData):
    TYPE = "agent.set_status"
    SERVICE = "agent"
    agent_id: Id
    status: Literal["online", "away", "offline"]
    max_chats: int | None = Field(default=None, ge=1, le=100)


class ExpireOffers(CommandData):
    """Sent by agent_service's own timer; kept on the queue so the decision stays single-writer."""

    TYPE = "conversation.expire_offers"
    SERVICE = "agent"
    conversation_id: Id


class ReportAgentConnectionLost(CommandData):
    TYPE = "agent.connection_lost"
    SERVICE = "agent"
    agent_id: Id


MODELS = (
    RequestConversation,
    AcceptConversation,
    DeclineConversation,
    TransferConversation,
    CloseConversation,
    RateConversation,
    SetAgentStatus,
    ExpireOffers,
    ReportAgentConnectionLost,
)
