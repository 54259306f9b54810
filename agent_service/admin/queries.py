"""Admin queries: login check, agent lookups, settings, groups, canned search."""

import inspect
from typing import Any

import structlog

from agent_service.admin.lockout import Lockout
from agent_service.admin.state import AdminState, TenantAdmin
from outbound_webhooks.dispatcher import WebhookDispatcher
from relaydesk.bus.rpc import RemoteError
from relaydesk.emails import normalize_email
from relaydesk.passwords import verify_password

log = structlog.get_logger(__name__)


class AdminQueries:
    def __init__(
        self, state: AdminState, lockout: Lockout, webhooks: WebhookDispatcher | None = None
    ) -> None:
        self._state = state
        self._lockout = lockout
        self._webhooks = webhooks
        self._answers = {
            "auth.check_password": self.check_password,
            "agent.get": self.agent_get,
            "tenant.settings": self.settings,
            "tenant.get": self.tenant_get,
            "agents.list": self.agents_list,
            "groups.list": self.groups_list,
            "canned.search": self.canned_search,
            "webhooks.list": self.webhooks_list,
            "webhooks.deliveries": self.webhook_deliveries,
        }

    async def handle(self, name: str, params: dict[str, Any]) -> Any:
        answer = self._answers.get(name)
        if answer is None:
            raise RemoteError("unknown_query", f"admin has no query {name!r}")
        tenant = params.get("tenant")
        if not isinstance(tenant, str):
            raise RemoteError("bad_request", "tenant is required")
        result = answer(self._state.tenants.get(tenant), params)
        return await result if inspect.isawaitable(result) else result

    async def check_password(
        self, tenant: TenantAdmin | None, params: dict[str, Any]
    ) -> dict[str, Any]:
        # one form of the address for the lookup and the lockout alike (docs/security.md, 3)
        email = normalize_email(str(params.get("email", "")))
        password, tenant_id = str(params.get("password", "")), str(params["tenant"])
        wait = await self._lockout.locked_for(tenant_id, email)
        if wait > 0:
            log.warning("login_locked", tenant=tenant_id, retry_after_s=int(wait) + 1)
            raise RemoteError("locked", f"too many failed logins; retry in {int(wait) + 1}s")
        agent = tenant.agent_by_email(email) if tenant and tenant.exists else None
        if (
            not verify_password(password, agent.password_hash if agent else None)
            or agent is None
            or tenant is None
        ):
            await self._lockout.failed(tenant_id, email)
            log.info(
                "login_failed", tenant=tenant_id, known_account=agent is not None
            )  # never the password
            raise RemoteError("invalid_credentials", "wrong tenant, email or password")
        await self._lockout.succeeded(tenant_id, email)
        return {**agent.public(), "permissions": tenant.permissions_of(agent)}

    def agent_get(self, tenant: TenantAdmin | None, params: dict[str, Any]) -> dict[str, Any]:
        agent = tenant.agents.get(str(params.get("agent_id"))) if tenant else None
        if agent is None or agent.removed or tenant is None:
            raise RemoteError("not_found", "no such agent")
        return {**agent.public(), "permissions": tenant.permissions_of(agent)}

    def settings(self, tenant: TenantAdmin | None, params: dict[str, Any]) -> dict[str, Any]:
        if tenant is None or not tenant.exists:
            raise RemoteError("not_found", "no such tenant")
        return dict(tenant.settings)

    def tenant_get(self, tenant: TenantAdmin | None, params: dict[str, Any]) -> dict[str, Any]:
        if tenant is None or not tenant.exists:
            raise RemoteError("not_found", "no such tenant")
        return {"tenant_id": tenant.tenant_id, "name": tenant.name, "mode": tenant.mode}

    def agents_list(
        self, tenant: TenantAdmin | None, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return [a.public() for a in tenant.agents.values() if not a.removed] if tenant else []

    def groups_list(
        self, tenant: TenantAdmin | None, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return list(tenant.groups.values()) if tenant else []

    def canned_search(
        self, tenant: TenantAdmin | None, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if tenant is None:
            return []
        q = str(params.get("q") or "").lower().lstrip("/")
        agent_id, groups = params.get("agent_id"), set(params.get("groups") or ())
        found = []
        for canned in tenant.canned.values():
            if canned.get("scope") == "personal" and canned.get("owner_id") != agent_id:
                continue
            if canned.get("scope") == "group" and canned.get("group_id") not in groups:
                continue
            if q and q not in canned["shortcut"].lower() and q not in canned["text"].lower():
                continue
            found.append(canned)
        return sorted(
            found, key=lambda c: (not c["shortcut"].lower().startswith(q), c["shortcut"])
        )[:50]

    def webhooks_list(
        self, tenant: TenantAdmin | None, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return (
            sorted(tenant.webhooks.values(), key=lambda s: s["subscription_id"]) if tenant else []
        )

    async def webhook_deliveries(
        self, tenant: TenantAdmin | None, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        subscription_id = str(params.get("subscription_id"))
        if tenant is None or subscription_id not in tenant.webhooks:
            raise RemoteError("not_found", "no such subscription")
        if self._webhooks is None:
            raise RemoteError("unavailable", "webhooks need MongoDB for their delivery log")
        limit = min(max(int(params.get("limit") or 100), 1), 500)
        return await self._webhooks.deliveries(tenant.tenant_id, subscription_id, limit)
