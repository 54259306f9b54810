"""Queries answered by administration (service ``admin``): accounts, settings, lists."""

from typing import Annotated, Any, Literal

from pydantic import Field

from contracts.queries.base import Answer, TenantQuery, clamp
from contracts.settings import TenantSettings

SERVICE = "admin"


class AgentProfile(Answer):
    agent_id: str
    email: str
    name: str
    role: str  # owner / admin / supervisor / agent
    groups: list[str]
    max_chats: int
    token_version: int  # raised when their tokens must stop working


class AgentAccount(AgentProfile):
    permissions: list[str]  # granted by their permission groups (roles add theirs at the gateway)


class TenantInfo(Answer):
    tenant_id: str
    name: str
    mode: str  # tool / saas


class PermissionGroup(Answer):
    group_id: str
    name: str
    permissions: list[str] = Field(default_factory=list)
    departments: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)


class CannedResponse(Answer):
    canned_id: str
    shortcut: str
    text: str
    scope: Literal["personal", "group", "tenant"] = "tenant"
    owner_id: str | None = None
    group_id: str | None = None
    language: str | None = None
    uses: int = 0  # messages sent with it


class WebhookSubscription(Answer):
    subscription_id: str
    url: str
    event_types: list[str]
    paused: bool = False  # delivers nothing until resumed (imported subscriptions start so)


class WebhookDelivery(Answer):
    """One delivery attempt (outbound_webhooks)."""

    tenant: str
    subscription_id: str
    event_id: str
    event_type: str
    position: int
    attempt: int
    ok: bool
    status: int | None  # the endpoint's HTTP status; None on a network error
    error: str | None
    at: str  # ISO 8601


class CheckPasswordQuery(TenantQuery[AgentAccount]):
    """A login: the account when tenant, e-mail and password match; else
    ``invalid_credentials`` (whichever was wrong), or ``locked`` after repeated failures."""

    NAME = "auth.check_password"
    SERVICE = SERVICE
    email: str
    password: str = Field(repr=False)


class AgentGetQuery(TenantQuery[AgentAccount]):
    """One agent (not removed); ``not_found`` otherwise."""

    NAME = "agent.get"
    SERVICE = SERVICE
    agent_id: str


class TenantSettingsQuery(TenantQuery[TenantSettings]):
    """Every setting of the tenant (contracts.settings); ``not_found`` for no such tenant."""

    NAME = "tenant.settings"
    SERVICE = SERVICE


class TenantGetQuery(TenantQuery[TenantInfo]):
    NAME = "tenant.get"
    SERVICE = SERVICE


class AgentsListQuery(TenantQuery[list[AgentProfile]]):
    NAME = "agents.list"
    SERVICE = SERVICE


class GroupsListQuery(TenantQuery[list[PermissionGroup]]):
    NAME = "groups.list"
    SERVICE = SERVICE


class CannedSearchQuery(TenantQuery[list[CannedResponse]]):
    """Canned responses ``agent_id`` (in ``groups``) may use matching ``q`` (shortcut or
    text; shortcut prefix matches first), at most 50."""

    NAME = "canned.search"
    SERVICE = SERVICE
    q: str = ""
    agent_id: str | None = None
    groups: list[str] = Field(default_factory=list)


class WebhooksListQuery(TenantQuery[list[WebhookSubscription]]):
    NAME = "webhooks.list"
    SERVICE = SERVICE


class WebhookDeliveriesQuery(TenantQuery[list[WebhookDelivery]]):
    """A subscription's delivery attempts, newest first; ``not_found`` for no such
    subscription, ``unavailable`` without MongoDB."""

    NAME = "webhooks.deliveries"
    SERVICE = SERVICE
    subscription_id: str
    limit: Annotated[int, clamp(1, 500)] = 100


QUERIES: tuple[type[TenantQuery[Any]], ...] = (
    CheckPasswordQuery,
    AgentGetQuery,
    TenantSettingsQuery,
    TenantGetQuery,
    AgentsListQuery,
    GroupsListQuery,
    CannedSearchQuery,
    WebhooksListQuery,
    WebhookDeliveriesQuery,
)
