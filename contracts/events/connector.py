"""Connector events: configuration and the platform bridge in both directions."""

from typing import Literal

from pydantic import Field

from contracts.audience import Audience
from contracts.base import EventData, Id, ShortText

Platform = Literal["telegram", "messenger", "wechat"]


class ConnectorConfigured(EventData):
    """Secrets are stored encrypted (``sealed_config``), never in clear on the log."""

    TYPE = "connector.configured"
    DECIDED_BY = "connectors"
    connector_id: Id
    platform: Platform
    public_config: dict[str, str] = Field(default_factory=dict)
    sealed_config: str = Field(max_length=20000)


class ConnectorRemoved(EventData):
    TYPE = "connector.removed"
    DECIDED_BY = "connectors"
    connector_id: Id


class InboundReceived(EventData):
    """A platform update was verified and accepted (dedupe key: platform_message_id)."""

    TYPE = "connector.inbound_received"
    connector_id: Id
    platform: Platform
    platform_message_id: ShortText
    platform_user_id: ShortText
    conversation_id: Id


class OutboundSent(EventData):
    TYPE = "connector.outbound_sent"
    AUDIENCE = frozenset({Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    connector_id: Id
    platform: Platform
    conversation_id: Id
    message_id: Id
    platform_message_id: ShortText | None = None


class OutboundFailed(EventData):
    TYPE = "connector.outbound_failed"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    connector_id: Id
    platform: Platform
    conversation_id: Id
    message_id: Id
    reason: ShortText
    permanent: bool


class UserBlocked(EventData):
    """The platform user blocked the bot (``blocked``) or allowed it again (Telegram
    ``my_chat_member``): replies cannot reach them while blocked."""

    TYPE = "connector.user_blocked"
    AUDIENCE = frozenset({Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    connector_id: Id
    platform: Platform
    conversation_id: Id
    message_id: Id  # the console shows it as a line of the conversation
    platform_user_id: ShortText
    blocked: bool


MODELS = (
    ConnectorConfigured,
    ConnectorRemoved,
    InboundReceived,
    OutboundSent,
    OutboundFailed,
    UserBlocked,
)
