"""Login, refresh and widget visitor sessions."""

import uuid
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from contracts.queries.admin import AgentAccount, AgentGetQuery, CheckPasswordQuery
from contracts.queries.history import ConversationsListQuery
from gateway.auth.http import ApiError, get_deps
from gateway.auth.permissions import effective_permissions
from gateway.auth.throttle import limit_credential_attempts
from gateway.auth.tokens import AgentPrincipal, InvalidToken
from gateway.deps import GatewayDeps
from relaydesk.bus import RemoteError, RequestTimeout

TENANT_PATTERN = r"^[A-Za-z0-9_.:\-@]{1,128}$"


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(pattern=TENANT_PATTERN)
    email: str = Field(min_length=3, max_length=200)
    password: str = Field(min_length=1, max_length=500)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(max_length=4096)


class VisitorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(pattern=TENANT_PATTERN)
    visitor_token: str | None = Field(default=None, max_length=4096)


def _principal(tenant: str, agent: AgentAccount) -> AgentPrincipal:
    return AgentPrincipal(
        tenant=tenant,
        agent_id=agent.agent_id,
        role=agent.role,
        name=agent.name,
        permissions=effective_permissions(agent.role, tuple(agent.permissions)),
        groups=tuple(agent.groups),
        token_version=agent.token_version,
    )


def _tokens(deps: GatewayDeps, principal: AgentPrincipal) -> dict[str, Any]:
    return {
        "access_token": deps.tokens.issue_access(principal),
        "refresh_token": deps.tokens.issue_refresh(principal),
        "expires_in": deps.settings.access_token_ttl_s,
        "agent": {
            "id": principal.agent_id,
            "name": principal.name,
            "role": principal.role,
            "tenant": principal.tenant,
            "permissions": sorted(principal.permissions),
        },
    }


async def _ask_admin(deps: GatewayDeps, query: CheckPasswordQuery | AgentGetQuery) -> AgentAccount:
    try:
        return await deps.rpc.ask(query, timeout=deps.settings.request_timeout_s)
    except RequestTimeout:
        raise ApiError(503, "unavailable", "the account service did not answer") from None


def build_router(deps: GatewayDeps) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["auth"])

    @router.post("/auth/login", dependencies=[Depends(limit_credential_attempts)])
    async def login(body: LoginRequest, deps: GatewayDeps = Depends(get_deps)) -> dict[str, Any]:
        try:
            agent = await _ask_admin(deps, CheckPasswordQuery(**body.model_dump()))
        except RemoteError as exc:
            if exc.code == "locked":
                raise ApiError(429, "locked", exc.message, headers={"Retry-After": "60"}) from None
            raise ApiError(401, "invalid_credentials", "wrong tenant, email or password") from None
        return _tokens(deps, _principal(body.tenant, agent))

    @router.post("/auth/refresh", dependencies=[Depends(limit_credential_attempts)])
    async def refresh(
        body: RefreshRequest, deps: GatewayDeps = Depends(get_deps)
    ) -> dict[str, Any]:
        try:
            claims = deps.tokens.decode(body.refresh_token, "refresh")
        except InvalidToken as exc:
            raise ApiError(401, "unauthorized", exc.reason) from None
        try:
            agent = await _ask_admin(
                deps, AgentGetQuery(tenant=claims["tenant"], agent_id=claims["sub"])
            )
        except RemoteError:
            raise ApiError(401, "unauthorized", "agent no longer exists") from None
        principal = _principal(claims["tenant"], agent)
        if principal.token_version != int(claims.get("ver", 0)) or deps.revocations.is_revoked(
            principal
        ):
            raise ApiError(401, "unauthorized", "token revoked")
        return _tokens(deps, principal)

    @router.post("/visitor/session")
    async def visitor_session(
        body: VisitorRequest, deps: GatewayDeps = Depends(get_deps)
    ) -> dict[str, Any]:
        visitor_id = None
        if body.visitor_token:
            try:
                known = deps.tokens.verify_visitor(body.visitor_token)
                if known.tenant == body.tenant:
                    visitor_id = known.visitor_id
            except InvalidToken:
                visitor_id = None  # a stale token just starts a new visitor
        visitor_id = visitor_id or "v" + uuid.uuid4().hex[:20]
        conversation_id = None
        try:
            recent = await deps.rpc.ask(
                ConversationsListQuery(
                    tenant=body.tenant, view="all", visitor_id=visitor_id, limit=5
                ),
                timeout=deps.settings.request_timeout_s,
            )
            conversation_id = next(
                (c.conversation_id for c in recent if c.status != "closed"), None
            )
        except (RemoteError, RequestTimeout):
            conversation_id = None
        return {
            "visitor_token": deps.tokens.issue_visitor(body.tenant, visitor_id),
            "visitor_id": visitor_id,
            "conversation_id": conversation_id,
        }

    return router
