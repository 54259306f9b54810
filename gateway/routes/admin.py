"""Administration API: agents, permission groups, canned responses, tenant settings.

Every route takes the tenant from the caller's token (never from the request) and checks
a permission; changes are commands to the admin single writer, so every edit is an event
with who/before/after on the log.
"""

import uuid
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from contracts import Actor, Envelope, derive_event_id
from contracts.base import Id  # path ids: what the commands accept, or a 400 before them
from contracts.commands.admin import (
    CreateAgent,
    CreateCanned,
    CreateGroup,
    DeleteCanned,
    DeleteGroup,
    PauseWebhook,
    RemoveAgent,
    ResumeWebhook,
    SubscribeWebhook,
    UnsubscribeWebhook,
    UpdateAgent,
    UpdateCanned,
    UpdateGroup,
    UpdateSettings,
)
from contracts.envelope import ActorKind
from contracts.queries import Query as BusQuery
from contracts.queries.admin import (
    AgentGetQuery,
    AgentsListQuery,
    CannedSearchQuery,
    GroupsListQuery,
    TenantGetQuery,
    TenantSettingsQuery,
    WebhookDeliveriesQuery,
    WebhooksListQuery,
)
from contracts.queries.agent import AgentsStatusQuery
from contracts.settings import SETTING_KEYS
from gateway.auth.http import ApiError, get_deps, require_agent
from gateway.auth.permissions import (
    EDIT_SHARED_CANNED,
    MANAGE_AGENTS,
    MANAGE_SETTINGS,
)
from gateway.auth.tokens import AgentPrincipal
from gateway.deps import GatewayDeps
from gateway.queries import ask
from relaydesk.bus import RemoteError, RequestTimeout
from relaydesk.keys import key_ring
from relaydesk.passwords import hash_password, password_problem
from relaydesk.sealing import subscription_secret

R = TypeVar("R")
Role = Literal["owner", "admin", "supervisor", "agent"]
ERROR_STATUS = {
    "not_found": 404,
    "already_exists": 409,
    "conflict": 409,
    "forbidden": 403,
    "invalid_payload": 400,
    "invalid_token": 400,
    "unavailable": 503,
    "plan_limit": 402,
}


class NewAgent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    role: Role = "agent"
    password: str = Field(description="checked by relaydesk.passwords.password_problem")
    groups: list[str] = []
    max_chats: int = Field(default=5, ge=1, le=100)


class AgentChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    role: Role | None = None
    groups: list[str] | None = None
    max_chats: int | None = Field(default=None, ge=1, le=100)
    password: str | None = Field(
        default=None, description="checked by relaydesk.passwords.password_problem"
    )


class NewGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    permissions: list[str] = []
    departments: list[str] = []
    channels: list[str] = []


class GroupChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    permissions: list[str] | None = None
    departments: list[str] | None = None
    channels: list[str] | None = None


class NewCanned(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shortcut: str = Field(min_length=1, max_length=64, pattern=r"^[\w\-]+$")
    text: str = Field(min_length=1, max_length=8000)
    scope: Literal["personal", "group", "tenant"] = "tenant"
    group_id: str | None = None
    language: str | None = Field(default=None, max_length=16)


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000)
    event_types: list[str] = Field(min_length=1, max_length=100)


class CannedChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shortcut: str | None = Field(default=None, max_length=64, pattern=r"^[\w\-]+$")
    text: str | None = Field(default=None, max_length=8000)
    language: str | None = Field(default=None, max_length=16)


async def admin_command(
    deps: GatewayDeps, agent: AgentPrincipal, type_name: str, stream: str, data: dict[str, Any]
) -> dict[str, Any]:
    envelope = Envelope(
        id=derive_event_id(agent.tenant, agent.agent_id, uuid.uuid4().hex),
        type=type_name,
        tenant=agent.tenant,
        stream=stream,
        actor=Actor(
            kind=ActorKind.admin if agent.role in ("owner", "admin") else ActorKind.agent,
            id=agent.agent_id,
        ),
        data=data,
    )
    return await send_admin_command(deps, envelope)


async def send_admin_command(deps: GatewayDeps, envelope: Envelope) -> dict[str, Any]:
    """Send a command to the admin single writer; its rejection becomes the HTTP error."""
    try:
        reply = await deps.rpc.command("admin", envelope, timeout=deps.settings.request_timeout_s)
    except RequestTimeout:
        raise ApiError(503, "unavailable", "the admin service did not answer") from None
    if not reply.ok:
        raise ApiError(
            ERROR_STATUS.get(reply.code or "", 400),
            reply.code or "rejected",
            reply.message or "rejected",
        )
    return {"ok": True, "event_ids": list(reply.event_ids)}


async def admin_query(deps: GatewayDeps, query: BusQuery[R]) -> R:
    return await ask(deps, query, ERROR_STATUS)


async def allowed_agent_password(
    deps: GatewayDeps, tenant: str, password: str, *account: str
) -> str:
    """``password`` for an agent of ``tenant`` (``account``: their e-mail, name), checked with
    the tenant's id and display name too, as sign-up and the CLI check it."""
    name = (await admin_query(deps, TenantGetQuery(tenant=tenant))).name
    return allowed_password(password, *account, tenant, name)


def allowed_password(password: str, *context: str) -> str:
    """``password`` when the password rule (docs/security.md, 10) allows it, else a 400."""
    problem = password_problem(password, context=context)
    if problem is not None:
        raise ApiError(400, "invalid_payload", problem, field="password")
    return password


def setting_at_fault(message: str) -> str | None:
    """The setting a refused settings change names first: contracts/settings.py says
    ``"timezone: unknown time zone 'Mars'"`` (or ``business_hours.mon.0: …``); ``None`` for a
    refusal about no one setting (``cannot change colour: …``)."""
    name = message.partition(":")[0].partition(".")[0]
    return name if name in SETTING_KEYS else None


# Who may grant which role or permission, and change whom, is decided by the admin service
# with the acting agent's current role and groups (agent_service/admin/grants.py): a route
# only checks that the caller may use it at all.


def build_router(deps: GatewayDeps) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["admin"])
    managers = require_agent(MANAGE_AGENTS)

    @router.get("/admin/agents")
    async def list_agents(
        agent: AgentPrincipal = Depends(managers), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        return await admin_query(deps, AgentsListQuery(tenant=agent.tenant))

    @router.post("/admin/agents", status_code=201)
    async def create_agent(
        body: NewAgent,
        agent: AgentPrincipal = Depends(managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        password = await allowed_agent_password(
            deps, agent.tenant, body.password, body.email, body.name
        )
        agent_id = "a" + uuid.uuid4().hex[:16]
        data = {
            **body.model_dump(exclude={"password"}),
            "agent_id": agent_id,
            "password_hash": hash_password(password),
        }
        return {
            **await admin_command(deps, agent, CreateAgent.TYPE, f"agent:{agent_id}", data),
            "agent_id": agent_id,
        }

    @router.patch("/admin/agents/{agent_id}")
    async def update_agent(
        agent_id: Id,
        body: AgentChanges,
        agent: AgentPrincipal = Depends(managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        changes = body.model_dump(exclude_none=True, exclude={"password"})
        if body.password is not None:
            target = await admin_query(deps, AgentGetQuery(tenant=agent.tenant, agent_id=agent_id))
            password = await allowed_agent_password(
                deps, agent.tenant, body.password, target.email, target.name
            )
            changes["password_hash"] = hash_password(password)
        if not changes:
            raise ApiError(400, "invalid_payload", "nothing to change")
        return await admin_command(
            deps,
            agent,
            UpdateAgent.TYPE,
            f"agent:{agent_id}",
            {"agent_id": agent_id, "changes": changes},
        )

    @router.delete("/admin/agents/{agent_id}")
    async def remove_agent(
        agent_id: Id,
        agent: AgentPrincipal = Depends(managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        return await admin_command(
            deps, agent, RemoveAgent.TYPE, f"agent:{agent_id}", {"agent_id": agent_id}
        )

    @router.get("/admin/agents/status")
    async def agents_status(
        agent: AgentPrincipal = Depends(require_agent()), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        try:
            return await deps.rpc.ask(
                AgentsStatusQuery(tenant=agent.tenant), timeout=deps.settings.request_timeout_s
            )
        except (RemoteError, RequestTimeout):
            raise ApiError(503, "unavailable", "the routing service did not answer") from None

    @router.get("/admin/groups")
    async def list_groups(
        agent: AgentPrincipal = Depends(managers), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        return await admin_query(deps, GroupsListQuery(tenant=agent.tenant))

    @router.post("/admin/groups", status_code=201)
    async def create_group(
        body: NewGroup,
        agent: AgentPrincipal = Depends(managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        group_id = "g" + uuid.uuid4().hex[:12]
        return {
            **await admin_command(
                deps,
                agent,
                CreateGroup.TYPE,
                f"group:{group_id}",
                {**body.model_dump(), "group_id": group_id},
            ),
            "group_id": group_id,
        }

    @router.patch("/admin/groups/{group_id}")
    async def update_group(
        group_id: Id,
        body: GroupChanges,
        agent: AgentPrincipal = Depends(managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        changes = body.model_dump(exclude_none=True)
        if not changes:
            raise ApiError(400, "invalid_payload", "nothing to change")
        done = await admin_command(
            deps,
            agent,
            UpdateGroup.TYPE,
            f"group:{group_id}",
            {"group_id": group_id, "changes": changes},
        )
        if "permissions" in changes:
            # Before answering: the caller's next request must not meet the old permissions
            # here, even if this gateway's tail has not reached the event yet.
            deps.group_permissions.changed(agent.tenant, group_id)
        return done

    @router.delete("/admin/groups/{group_id}")
    async def delete_group(
        group_id: Id,
        agent: AgentPrincipal = Depends(managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        done = await admin_command(
            deps, agent, DeleteGroup.TYPE, f"group:{group_id}", {"group_id": group_id}
        )
        deps.group_permissions.changed(agent.tenant, group_id)  # as in update_group
        return done

    @router.get("/account")
    async def get_account(
        agent: AgentPrincipal = Depends(require_agent()), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        # Any agent may know which account they work in and its mode: the admin pages offer
        # billing only where there are bills (SaaS), not a page that can only say "no".
        return await admin_query(deps, TenantGetQuery(tenant=agent.tenant))

    @router.get("/admin/settings")
    async def get_settings(
        agent: AgentPrincipal = Depends(require_agent(MANAGE_SETTINGS)),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        return await admin_query(deps, TenantSettingsQuery(tenant=agent.tenant))

    @router.patch("/admin/settings")
    async def patch_settings(
        changes: dict[str, Any],
        agent: AgentPrincipal = Depends(require_agent(MANAGE_SETTINGS)),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        try:
            result = await admin_command(
                deps, agent, UpdateSettings.TYPE, "tenant", {"changes": changes}
            )
        except ApiError as refused:
            # The admin service's refusal is its message only: name the setting for the form.
            at_fault = (
                setting_at_fault(refused.message) if refused.code == "invalid_payload" else None
            )
            if at_fault is None:
                raise
            raise ApiError(
                refused.status_code, refused.code, refused.message, field=at_fault
            ) from None
        # The log will tell every gateway; this one forgets at once so its next read is fresh.
        deps.tenant_settings.forget(agent.tenant)
        return result

    @router.get("/canned")
    async def search_canned(
        q: str = Query("", max_length=100),
        agent: AgentPrincipal = Depends(require_agent()),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        return await admin_query(
            deps,
            CannedSearchQuery(
                tenant=agent.tenant, q=q, agent_id=agent.agent_id, groups=list(agent.groups)
            ),
        )

    @router.post("/canned", status_code=201)
    async def create_canned(
        body: NewCanned,
        agent: AgentPrincipal = Depends(require_agent()),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        if body.scope != "personal" and not agent.can(EDIT_SHARED_CANNED):
            raise ApiError(403, "forbidden", f"missing permission {EDIT_SHARED_CANNED}")
        canned_id = "r" + uuid.uuid4().hex[:12]
        data = {
            **body.model_dump(exclude_none=True),
            "canned_id": canned_id,
            "owner_id": agent.agent_id,
        }
        return {
            **await admin_command(deps, agent, CreateCanned.TYPE, f"canned:{canned_id}", data),
            "canned_id": canned_id,
        }

    def who_edits(agent: AgentPrincipal) -> dict[str, Any]:
        # The admin service decides with its state: personal responses only by their owner, shared
        # ones with the permission.
        return {"acting_agent": agent.agent_id, "may_edit_shared": agent.can(EDIT_SHARED_CANNED)}

    @router.patch("/canned/{canned_id}")
    async def update_canned(
        canned_id: Id,
        body: CannedChanges,
        agent: AgentPrincipal = Depends(require_agent()),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        data = {
            "canned_id": canned_id,
            "changes": body.model_dump(exclude_none=True),
            **who_edits(agent),
        }
        return await admin_command(deps, agent, UpdateCanned.TYPE, f"canned:{canned_id}", data)

    @router.delete("/canned/{canned_id}")
    async def delete_canned(
        canned_id: Id,
        agent: AgentPrincipal = Depends(require_agent()),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        return await admin_command(
            deps,
            agent,
            DeleteCanned.TYPE,
            f"canned:{canned_id}",
            {"canned_id": canned_id, **who_edits(agent)},
        )

    _webhook_routes(router)
    return router


def _pausing(command_type: str, permitted: Any) -> Any:
    """A route pausing or resuming a subscription (the admin service decides)."""

    async def route(
        subscription_id: Id,
        agent: AgentPrincipal = Depends(permitted),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        data = {"subscription_id": subscription_id}
        return await admin_command(
            deps, agent, command_type, f"subscription:{subscription_id}", data
        )

    return route


def _webhook_routes(router: APIRouter) -> None:
    settings_managers = require_agent(MANAGE_SETTINGS)

    @router.get("/admin/webhooks")
    async def list_webhooks(
        agent: AgentPrincipal = Depends(settings_managers), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        return await admin_query(deps, WebhooksListQuery(tenant=agent.tenant))

    @router.post("/admin/webhooks", status_code=201)
    async def subscribe(
        body: NewWebhook,
        agent: AgentPrincipal = Depends(settings_managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        subscription_id = "w" + uuid.uuid4().hex[:12]
        data = {
            "subscription_id": subscription_id,
            "url": body.url,
            "event_types": body.event_types,
        }
        done = await admin_command(
            deps, agent, SubscribeWebhook.TYPE, f"subscription:{subscription_id}", data
        )
        # The secret is derived, never stored: shown here so the receiver can verify signatures.
        secret = subscription_secret(
            key_ring(deps.settings, "secrets_key").current, agent.tenant, subscription_id
        )
        return {**done, "subscription_id": subscription_id, "secret": secret}

    @router.delete("/admin/webhooks/{subscription_id}")
    async def unsubscribe(
        subscription_id: Id,
        agent: AgentPrincipal = Depends(settings_managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        return await admin_command(
            deps,
            agent,
            UnsubscribeWebhook.TYPE,
            f"subscription:{subscription_id}",
            {"subscription_id": subscription_id},
        )

    for action, command_type in (("pause", PauseWebhook.TYPE), ("resume", ResumeWebhook.TYPE)):
        router.add_api_route(
            f"/admin/webhooks/{{subscription_id}}/{action}",
            _pausing(command_type, settings_managers),
            methods=["POST"],
            name=f"{action}_webhook",
        )

    @router.get("/admin/webhooks/{subscription_id}/deliveries")
    async def deliveries(
        subscription_id: Id,
        limit: int = Query(100, ge=1, le=500),
        agent: AgentPrincipal = Depends(settings_managers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        return await admin_query(
            deps,
            WebhookDeliveriesQuery(
                tenant=agent.tenant, subscription_id=subscription_id, limit=limit
            ),
        )
