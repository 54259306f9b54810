"""Commands owned by the admin single writer (queue ``admin``, inside agent_service).

Passwords never travel in clear on the bus: the sender hashes them (``password_hash``).
"""

from typing import Any, Literal

from pydantic import Field

from contracts.base import Body, CommandData, Id, ShortText

Role = Literal["owner", "admin", "supervisor", "agent"]


class CreateTenant(CommandData):
    TYPE = "tenant.create"
    SERVICE = "admin"
    tenant_id: Id
    name: ShortText
    mode: Literal["saas", "tool"] = "tool"
    owner_email: ShortText | None = None
    plan: Id | None = None


class CreateAgent(CommandData):
    TYPE = "agent.create"
    SERVICE = "admin"
    agent_id: Id
    email: ShortText
    name: ShortText
    role: Role = "agent"
    groups: tuple[Id, ...] = ()
    max_chats: int = Field(default=5, ge=1, le=100)
    password_hash: ShortText


class UpdateAgent(CommandData):
    TYPE = "agent.update"
    SERVICE = "admin"
    agent_id: Id
    changes: dict[str, Any]


class RemoveAgent(CommandData):
    TYPE = "agent.remove"
    SERVICE = "admin"
    agent_id: Id


class UpdateSettings(CommandData):
    TYPE = "tenant.update_settings"
    SERVICE = "admin"
    changes: dict[str, Any]


class CreateGroup(CommandData):
    TYPE = "permission_group.create"
    SERVICE = "admin"
    group_id: Id
    name: ShortText
    permissions: tuple[Id, ...] = ()
    departments: tuple[Id, ...] = ()
    channels: tuple[Id, ...] = ()


class UpdateGroup(CommandData):
    TYPE = "permission_group.update"
    SERVICE = "admin"
    group_id: Id
    changes: dict[str, Any]


class DeleteGroup(CommandData):
    TYPE = "permission_group.delete"
    SERVICE = "admin"
    group_id: Id


class CreateCanned(CommandData):
    TYPE = "canned_response.create"
    SERVICE = "admin"
    canned_id: Id
    shortcut: ShortText
    text: Body
    scope: Literal["personal", "group", "tenant"] = "tenant"
    owner_id: Id | None = None
    group_id: Id | None = None
    language: ShortText | None = None


class UpdateCanned(CommandData):
    TYPE = "canned_response.update"
    SERVICE = "admin"
    canned_id: Id
    changes: dict[str, Any]
    # Who asks, and may they edit shared responses: personal ones belong to their owner only.
    acting_agent: Id | None = None
    may_edit_shared: bool = True


class DeleteCanned(CommandData):
    TYPE = "canned_response.delete"
    SERVICE = "admin"
    canned_id: Id
    # Who asks, and may they edit shared responses: personal ones belong to their owner only.
    acting_agent: Id | None = None
    may_edit_shared: bool = True


class SignUp(CommandData):
    """SaaS sign-up: a pending tenant until the owner confirms the e-mail link.

    Only the token's SHA-256 travels: the link itself is a credential.
    """

    TYPE = "tenant.sign_up"
    SERVICE = "admin"
    tenant_id: Id
    name: ShortText
    owner_email: ShortText
    owner_name: ShortText
    password_hash: ShortText
    token_hash: Id


class ConfirmSignUp(CommandData):
    TYPE = "tenant.confirm_sign_up"
    SERVICE = "admin"
    token_hash: Id


class SubscribeWebhook(CommandData):
    TYPE = "webhook.subscribe"
    SERVICE = "admin"
    subscription_id: Id
    url: str = Field(max_length=2000)
    event_types: tuple[ShortText, ...] = Field(min_length=1)


class UnsubscribeWebhook(CommandData):
    TYPE = "webhook.unsubscribe"
    SERVICE = "admin"
    subscription_id: Id


class PauseWebhook(CommandData):
    """No deliveries until resumed; events meanwhile are delivered after (nothing is lost)."""

    TYPE = "webhook.pause"
    SERVICE = "admin"
    subscription_id: Id


class ResumeWebhook(CommandData):
    TYPE = "webhook.resume"
    SERVICE = "admin"
    subscription_id: Id


class PauseConnector(CommandData):
    """No polling or sending until resumed; replies wait in the outbox, in order."""

    TYPE = "connector.pause"
    SERVICE = "admin"
    connector_id: Id


class ResumeConnector(CommandData):
    TYPE = "connector.resume"
    SERVICE = "admin"
    connector_id: Id


MODELS = (
    CreateTenant,
    CreateAgent,
    UpdateAgent,
    RemoveAgent,
    UpdateSettings,
    CreateGroup,
    UpdateGroup,
    DeleteGroup,
    CreateCanned,
    UpdateCanned,
    DeleteCanned,
    SignUp,
    ConfirmSignUp,
    SubscribeWebhook,
    UnsubscribeWebhook,
    PauseWebhook,
    ResumeWebhook,
    PauseConnector,
    ResumeConnector,
)
