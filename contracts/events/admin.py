"""Administration events: tenants, agents, permission groups, canned responses, settings.

Each change carries who did it (the envelope's actor) and, for edits, before/after.
"""

from typing import Any, Literal

from pydantic import Field

from contracts.audience import Audience
from contracts.base import Body, EventData, Id, ShortText

Role = Literal["owner", "admin", "supervisor", "agent"]
AgentStatus = Literal["online", "away", "offline"]


class TenantCreated(EventData):
    TYPE = "tenant.created"
    DECIDED_BY = "admin"
    tenant_id: Id
    name: ShortText
    mode: Literal["saas", "tool"]
    owner_email: ShortText | None = None
    plan: Id | None = None


class TenantEmailConfirmed(EventData):
    TYPE = "tenant.email_confirmed"
    DECIDED_BY = "admin"
    tenant_id: Id
    email: ShortText


class TenantSettingsChanged(EventData):
    TYPE = "tenant.settings_changed"
    DECIDED_BY = "admin"
    AUDIENCE = frozenset({Audience.TENANT_AGENTS})
    before: dict[str, Any]
    after: dict[str, Any]


class AgentCreated(EventData):
    TYPE = "agent.created"
    DECIDED_BY = "admin"
    agent_id: Id
    email: ShortText
    name: ShortText
    role: Role = "agent"
    groups: tuple[Id, ...] = ()
    max_chats: int = Field(default=5, ge=1, le=100)
    password_hash: ShortText | None = None


class AgentUpdated(EventData):
    TYPE = "agent.updated"
    DECIDED_BY = "admin"
    agent_id: Id
    before: dict[str, Any]
    after: dict[str, Any]


class AgentRemoved(EventData):
    TYPE = "agent.removed"
    DECIDED_BY = "admin"
    agent_id: Id


class AgentStatusChanged(EventData):
    TYPE = "agent.status_changed"
    DECIDED_BY = "agent"
    AUDIENCE = frozenset({Audience.TENANT_AGENTS})
    agent_id: Id
    status: AgentStatus
    max_chats: int | None = Field(default=None, ge=1, le=100)


class PermissionGroupCreated(EventData):
    TYPE = "permission_group.created"
    DECIDED_BY = "admin"
    group_id: Id
    name: ShortText
    permissions: tuple[Id, ...] = ()
    departments: tuple[Id, ...] = ()
    channels: tuple[Id, ...] = ()


class PermissionGroupUpdated(EventData):
    TYPE = "permission_group.updated"
    DECIDED_BY = "admin"
    group_id: Id
    before: dict[str, Any]
    after: dict[str, Any]


class PermissionGroupDeleted(EventData):
    TYPE = "permission_group.deleted"
    DECIDED_BY = "admin"
    group_id: Id


class CannedResponseCreated(EventData):
    """No socket receives canned-response events: a personal one is its owner's alone (HTTP
    answers 404 to others) and the console searches ``GET /api/canned`` as the agent types."""

    TYPE = "canned_response.created"
    DECIDED_BY = "admin"
    canned_id: Id
    shortcut: ShortText
    text: Body
    scope: Literal["personal", "group", "tenant"] = "tenant"
    owner_id: Id | None = None
    group_id: Id | None = None
    language: ShortText | None = None


class CannedResponseUpdated(EventData):
    TYPE = "canned_response.updated"
    DECIDED_BY = "admin"
    canned_id: Id
    before: dict[str, Any]
    after: dict[str, Any]


class CannedResponseDeleted(EventData):
    TYPE = "canned_response.deleted"
    DECIDED_BY = "admin"
    canned_id: Id


class CannedResponseUsed(EventData):
    TYPE = "canned_response.used"
    canned_id: Id
    conversation_id: Id


class WebhookSubscribed(EventData):
    TYPE = "webhook.subscribed"
    DECIDED_BY = "admin"
    subscription_id: Id
    url: str = Field(max_length=2000)
    event_types: tuple[str, ...]


class WebhookUnsubscribed(EventData):
    TYPE = "webhook.unsubscribed"
    DECIDED_BY = "admin"
    subscription_id: Id


PauseReason = Literal["admin", "imported"]


class WebhookPaused(EventData):
    """The subscription delivers nothing until a resume ends this pause (the event's id).

    ``imported``: published by ``relaydesk import`` just before the imported
    ``webhook.subscribed``, so the subscription is paused from its first fold; a pause for a
    subscription not created yet holds it from its creation on.
    """

    TYPE = "webhook.paused"
    DECIDED_BY = "admin"
    subscription_id: Id
    reason: PauseReason = "admin"


class WebhookResumed(EventData):
    """Ends the pauses named by their event ids (those in force when it was decided): an
    imported resume names the source's pauses, never the import's own."""

    TYPE = "webhook.resumed"
    DECIDED_BY = "admin"
    subscription_id: Id
    pauses: tuple[Id, ...] = Field(min_length=1, max_length=1000)


class CommandRejected(EventData):
    """A command's owner said no; ``reason`` is a stable code the client can show."""

    TYPE = "command.rejected"
    command_id: Id
    command_type: ShortText
    reason: Id
    detail: ShortText | None = None


MODELS = (
    TenantCreated,
    TenantEmailConfirmed,
    TenantSettingsChanged,
    AgentCreated,
    AgentUpdated,
    AgentRemoved,
    AgentStatusChanged,
    PermissionGroupCreated,
    PermissionGroupUpdated,
    PermissionGroupDeleted,
    CannedResponseCreated,
    CannedResponseUpdated,
    CannedResponseDeleted,
    CannedResponseUsed,
    WebhookSubscribed,
    WebhookUnsubscribed,
    WebhookPaused,
    WebhookResumed,
    CommandRejected,
)
