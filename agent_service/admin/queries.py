"""Admin queries (contracts/queries/admin.py): login check, agent lookups, settings, lists."""

import structlog

from agent_service.admin.lockout import Lockout
from agent_service.admin.state import AdminState, AgentRecord, TenantAdmin
from contracts.queries.admin import (
    AgentAccount,
    AgentGetQuery,
    AgentProfile,
    AgentsListQuery,
    CannedResponse,
    CannedSearchQuery,
    CheckPasswordQuery,
    GroupsListQuery,
    PermissionGroup,
    TenantGetQuery,
    TenantInfo,
    TenantSettingsQuery,
    WebhookDeliveriesQuery,
    WebhookDelivery,
    WebhooksListQuery,
    WebhookSubscription,
)
from contracts.queries.base import TenantQuery
from contracts.settings import TenantSettings
from outbound_webhooks.dispatcher import WebhookDispatcher
from relaydesk.bus.rpc import RemoteError
from relaydesk.emails import normalize_email
from relaydesk.passwords import verify_password
from relaydesk.queries import answers

log = structlog.get_logger(__name__)


def _account(tenant: TenantAdmin, agent: AgentRecord) -> AgentAccount:
    return AgentAccount(**agent.public(), permissions=tenant.permissions_of(agent))


class AdminQueries:
    def __init__(
        self, state: AdminState, lockout: Lockout, webhooks: WebhookDispatcher | None = None
    ) -> None:
        self._state = state
        self._lockout = lockout
        self._webhooks = webhooks

    def _tenant(self, query: TenantQuery) -> TenantAdmin | None:
        return self._state.tenants.get(query.tenant)

    def _existing(self, query: TenantQuery) -> TenantAdmin:
        tenant = self._tenant(query)
        if tenant is None or not tenant.exists:
            raise RemoteError("not_found", "no such tenant")
        return tenant

    @answers(CheckPasswordQuery)
    async def check_password(self, query: CheckPasswordQuery) -> AgentAccount:
        # one form of the address for the lookup and the lockout alike (docs/security.md, 3)
        tenant, email = self._tenant(query), normalize_email(query.email)
        wait = await self._lockout.locked_for(query.tenant, email)
        if wait > 0:
            log.warning("login_locked", tenant=query.tenant, retry_after_s=int(wait) + 1)
            raise RemoteError("locked", f"too many failed logins; retry in {int(wait) + 1}s")
        agent = tenant.agent_by_email(email) if tenant and tenant.exists else None
        if (
            not verify_password(query.password, agent.password_hash if agent else None)
            or agent is None
            or tenant is None
        ):
            await self._lockout.failed(query.tenant, email)
            log.info(
                "login_failed", tenant=query.tenant, known_account=agent is not None
            )  # never the password
            raise RemoteError("invalid_credentials", "wrong tenant, email or password")
        await self._lockout.succeeded(query.tenant, email)
        return _account(tenant, agent)

    @answers(AgentGetQuery)
    def agent_get(self, query: AgentGetQuery) -> AgentAccount:
        tenant = self._tenant(query)
        agent = tenant.agents.get(query.agent_id) if tenant else None
        if agent is None or agent.removed or tenant is None:
            raise RemoteError("not_found", "no such agent")
        return _account(tenant, agent)

    @answers(TenantSettingsQuery)
    def settings(self, query: TenantSettingsQuery) -> TenantSettings:
        return TenantSettings.from_saved(self._existing(query).settings)

    @answers(TenantGetQuery)
    def tenant_get(self, query: TenantGetQuery) -> TenantInfo:
        tenant = self._existing(query)
        return TenantInfo(tenant_id=tenant.tenant_id, name=tenant.name, mode=tenant.mode)

    @answers(AgentsListQuery)
    def agents_list(self, query: AgentsListQuery) -> list[AgentProfile]:
        tenant = self._tenant(query)
        agents = tenant.agents.values() if tenant else ()
        return [AgentProfile(**a.public()) for a in agents if not a.removed]

    @answers(GroupsListQuery)
    def groups_list(self, query: GroupsListQuery) -> list[PermissionGroup]:
        tenant = self._tenant(query)
        return [PermissionGroup(**g) for g in tenant.groups.values()] if tenant else []

    @answers(CannedSearchQuery)
    def canned_search(self, query: CannedSearchQuery) -> list[CannedResponse]:
        tenant = self._tenant(query)
        if tenant is None:
            return []
        q, groups = query.q.lower().lstrip("/"), set(query.groups)
        found = []
        for canned in tenant.canned.values():
            if canned.get("scope") == "personal" and canned.get("owner_id") != query.agent_id:
                continue
            if canned.get("scope") == "group" and canned.get("group_id") not in groups:
                continue
            if q and q not in canned["shortcut"].lower() and q not in canned["text"].lower():
                continue
            found.append(canned)
        chosen = sorted(
            found, key=lambda c: (not c["shortcut"].lower().startswith(q), c["shortcut"])
        )[:50]
        return [CannedResponse(**c) for c in chosen]

    @answers(WebhooksListQuery)
    def webhooks_list(self, query: WebhooksListQuery) -> list[WebhookSubscription]:
        tenant = self._tenant(query)
        subscriptions = sorted(
            tenant.webhooks.values() if tenant else (), key=lambda s: s["subscription_id"]
        )
        paused = tenant.webhook_pauses if tenant else {}
        return [
            WebhookSubscription(**s, paused=bool(paused.get(s["subscription_id"])))
            for s in subscriptions
        ]

    @answers(WebhookDeliveriesQuery)
    async def webhook_deliveries(self, query: WebhookDeliveriesQuery) -> list[WebhookDelivery]:
        tenant = self._tenant(query)
        if tenant is None or query.subscription_id not in tenant.webhooks:
            raise RemoteError("not_found", "no such subscription")
        if self._webhooks is None:
            raise RemoteError("unavailable", "webhooks need MongoDB for their delivery log")
        found = await self._webhooks.deliveries(
            tenant.tenant_id, query.subscription_id, query.limit
        )
        return [WebhookDelivery(**d) for d in found]
