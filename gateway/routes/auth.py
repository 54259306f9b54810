"""Login, refresh, logout and widget visitor sessions.

Refresh tokens rotate: each is good for one refresh, and one used twice revokes its whole
family (``gateway/auth/refresh_families.py``); logout revokes the family of the refresh
token it is given.
"""

import time
import uuid
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from contracts.queries.admin import AgentAccount, AgentGetQuery, CheckPasswordQuery
from contracts.queries.agent import VisitorConversationQuery
from gateway.auth.http import ApiError, get_deps
from gateway.auth.permissions import effective_permissions
from gateway.auth.refresh_families import Rotation
from gateway.auth.throttle import limit_credential_attempts
from gateway.auth.tokens import AgentPrincipal, InvalidToken
from gateway.deps import GatewayDeps
from relaydesk.bus import RemoteError, RequestTimeout

log = structlog.get_logger(__name__)

TENANT_PATTERN = r"^[A-Za-z0-9_.:\-@]{1,128}$"


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(pattern=TENANT_PATTERN)
    email: str = Field(min_length=3, max_length=200)
    password: str = Field(min_length=1, max_length=500)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(max_length=4096)


class LogoutRequest(BaseModel):
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


def _new_jti() -> str:
    return uuid.uuid4().hex


def _family_expiry(deps: GatewayDeps) -> float:
    return time.time() + deps.tokens.refresh_ttl_s


def _tokens(deps: GatewayDeps, principal: AgentPrincipal, family: str, jti: str) -> dict[str, Any]:
    return {
        "access_token": deps.tokens.issue_access(principal),
        "refresh_token": deps.tokens.issue_refresh(principal, family, jti),
        "expires_in": deps.settings.access_token_ttl_s,
        "agent": {
            "id": principal.agent_id,
            "name": principal.name,
            "role": principal.role,
            "tenant": principal.tenant,
            "permissions": sorted(principal.permissions),
        },
    }


def _refresh_claims(deps: GatewayDeps, token: str) -> dict[str, Any]:
    """A refresh token's claims; it must belong to a family (tokens from before families
    were introduced are refused: their holders sign in again)."""
    try:
        claims = deps.tokens.decode(token, "refresh")
    except InvalidToken as exc:
        raise ApiError(401, "unauthorized", exc.reason) from None
    if not isinstance(claims.get("fam"), str) or not isinstance(claims.get("jti"), str):
        raise ApiError(401, "unauthorized", "session ended: sign in again")
    return claims


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
        principal = _principal(body.tenant, agent)
        family, jti = uuid.uuid4().hex, _new_jti()
        await deps.refresh_families.start(
            family, principal.tenant, principal.agent_id, jti, _family_expiry(deps)
        )
        return _tokens(deps, principal, family, jti)

    @router.post("/auth/refresh", dependencies=[Depends(limit_credential_attempts)])
    async def refresh(
        body: RefreshRequest, deps: GatewayDeps = Depends(get_deps)
    ) -> dict[str, Any]:
        claims = _refresh_claims(deps, body.refresh_token)
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
        jti = _new_jti()
        rotation = await deps.refresh_families.rotate(
            claims["fam"], claims["jti"], jti, _family_expiry(deps)
        )
        if rotation is Rotation.REUSED:
            log.warning(
                "refresh_token_reused", tenant=principal.tenant, agent_id=principal.agent_id
            )
            raise ApiError(401, "unauthorized", "refresh token used twice: sign in again")
        if rotation is not Rotation.ROTATED:
            raise ApiError(401, "unauthorized", "session ended: sign in again")
        return _tokens(deps, principal, claims["fam"], jti)

    @router.post("/auth/logout")
    async def logout(body: LogoutRequest, deps: GatewayDeps = Depends(get_deps)) -> dict[str, Any]:
        claims = _refresh_claims(deps, body.refresh_token)
        ended = await deps.refresh_families.revoke(claims["fam"], "logout")
        log.info("logged_out", tenant=claims["tenant"], agent_id=claims["sub"], ended=ended)
        return {"ok": True}

    @router.post("/visitor/session")
    async def visitor_session(
        body: VisitorRequest, request: Request, deps: GatewayDeps = Depends(get_deps)
    ) -> dict[str, Any]:
        exists = await deps.tenants.exists(body.tenant)
        if exists is None:
            raise ApiError(503, "unavailable", "the account service did not answer; retry")
        if not exists:
            raise ApiError(404, "not_found", "no such workspace")
        # The socket would be refused on this page anyway (gateway/origins.py): say so now,
        # in an answer the widget can read, and issue no token for it.
        origin, host = request.headers.get("origin"), request.headers.get("host", "")
        if not await deps.origins.site_allowed(body.tenant, origin, host):
            log.info("visitor_session_refused", reason="origin", tenant=body.tenant)
            raise ApiError(403, "forbidden", "this chat is not available on this site")
        visitor_id = None
        if body.visitor_token:
            try:
                known = deps.tokens.verify_visitor(body.visitor_token)
                if known.tenant == body.tenant:
                    visitor_id = known.visitor_id
            except InvalidToken:
                visitor_id = None  # a stale token just starts a new visitor
        visitor_id = visitor_id or "v" + uuid.uuid4().hex[:20]
        # Routing decided the visitor's conversations and knows the latest at once; history's
        # read model can lag behind the log, and a "none" from it made a reloaded widget
        # lose its live chat (or start a second one). Unanswered is an error, never "none".
        try:
            latest = await deps.rpc.ask(
                VisitorConversationQuery(tenant=body.tenant, visitor_id=visitor_id),
                timeout=deps.settings.request_timeout_s,
            )
            conversation_id: str | None = latest.conversation_id
        except RemoteError as exc:
            if exc.code != "not_found":
                raise ApiError(503, "unavailable", "routing did not answer; retry") from exc
            conversation_id = None
        except RequestTimeout as exc:
            raise ApiError(503, "unavailable", "routing did not answer; retry") from exc
        return {
            "visitor_token": deps.tokens.issue_visitor(body.tenant, visitor_id),
            "visitor_id": visitor_id,
            "conversation_id": conversation_id,
        }

    return router
