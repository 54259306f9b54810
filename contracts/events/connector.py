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


class ConnectorPaused(EventData):
    """The connector polls and sends nothing until a resume ends this pause (the event's id);
    replies wait in its outbox. Decided by the admin service (``connector.pause``), or
    ``imported``: published by ``relaydesk import`` just before the imported
    ``connector.configured`` (a pause of a connector not configured yet holds it from then on).
    """

    TYPE = "connector.paused"
    DECIDED_BY = "admin"
    connector_id: Id
    reason: Literal["admin", "imported"] = "admin"


class ConnectorResumed(EventData):
    """Ends the pauses named by their event ids (those in force when it was decided)."""

    TYPE = "connector.resumed"
    DECIDED_BY = "admin"
    connector_id: Id
    pauses: tuple[Id, ...] = Field(min_length=1, max_length=1000)


class InboundReceived(EventData):
    """A platform update was verified and accepted (dedupe key: platform_message_id)."""

    TYPE = "connector.inbound_received"
    connector_id: Id
    platform: Platform
    platform_message_id: ShortText
    platform_user_id: ShortText
    conversation_id: Id


class OutboundSent(EventData):
    """A reply reached the platform: in ``parts`` messages when it was longer than the
    platform takes (split on word boundaries, sent in order; ``platform_message_ids`` in
    that order, ``platform_message_id`` the first)."""

    TYPE = "connector.outbound_sent"
    AUDIENCE = frozenset({Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    connector_id: Id
    platform: Platform
    conversation_id: Id
    message_id: Id
    platform_message_id: ShortText | None = None
    parts: int = Field(default=1, ge=1)
    platform_message_ids: list[ShortText] = Field(default_factory=list, max_length=100)


class OutboundFailed(EventData):
    TYPE = "connector.outbound_failed"
    AUDIENCE = frozenset({Audience.VISITOR, Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    connector_id: Id
    platform: Platform
    conversation_id: Id
    message_id: Id
    reason: ShortText
    permanent: bool
    # Kept, waiting (never dropped); ``waits_for`` says for what:
    # - "retry": the platform refused this reply; an agent's retry
    #   (``connector.outbound_retry_requested``) sends it, then the ones waiting behind it;
    # - "earlier_reply": it waits behind ``behind``, an earlier parked reply of the
    #   conversation (order is kept), and goes out after it once that one is retried;
    # - "credentials": the platform refused the connector's credentials; saving new ones
    #   sends every reply of the connector that waits for them, in order (a retry sends it
    #   only once no other reply of the connector waits for credentials).
    parked: bool = False
    waits_for: Literal["retry", "earlier_reply", "credentials"] | None = None
    behind: Id | None = None


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


class OutboundRetryRequested(EventData):
    """An agent asked to send a parked reply again (op ``retry_delivery``): ``message_id``
    goes out again, then the replies of the conversation parked behind it, in order, each
    with a new result. Earlier parked replies of the conversation stay parked."""

    TYPE = "connector.outbound_retry_requested"
    AUDIENCE = frozenset({Audience.CONVERSATION_AGENTS, Audience.SUPERVISORS})
    conversation_id: Id
    message_id: Id


MODELS = (
    ConnectorConfigured,
    ConnectorRemoved,
    ConnectorPaused,
    ConnectorResumed,
    InboundReceived,
    OutboundSent,
    OutboundFailed,
    UserBlocked,
    OutboundRetryRequested,
)
