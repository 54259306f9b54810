"""FastAPI dependencies: who is calling, and may they do this.

Errors are JSON ``{"error": {"code", "message"}}`` with 401 (no/invalid token) or 403;
``field`` too where one field of the body is at fault.
"""

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request

from gateway.access_log import note_tenant
from gateway.auth.tokens import AgentPrincipal, InvalidToken, Principal
from gateway.deps import GatewayDeps


class ApiError(HTTPException):
    """``field``: the body field at fault, when one is (a form shows the message next to it)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        field: str | None = None,
    ) -> None:
        detail = {"code": code, "message": message}
        if field is not None:
            detail["field"] = field
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.code, self.message = code, message


def get_deps(request: Request) -> GatewayDeps:
    """What the app's lifespan built (``gateway/app.py``)."""
    deps: GatewayDeps = request.app.state.deps
    return deps


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "missing bearer token")
    return token.strip()


def require_principal() -> Callable[..., Awaitable[Principal]]:
    """Either an agent access token or a visitor token.

    An agent's permissions are those the token lists *and* its role and groups still grant
    (``gateway/auth/group_permissions.py``): a group that lost a permission takes it from
    the next request.
    """

    async def dependency(request: Request) -> Principal:
        deps = get_deps(request)
        try:
            principal = deps.tokens.verify_any(_bearer(request))
        except InvalidToken as exc:
            raise ApiError(401, "unauthorized", exc.reason) from None
        if deps.revocations.is_revoked(principal):
            raise ApiError(401, "unauthorized", "token revoked")
        note_tenant(request.scope, principal.tenant)
        if isinstance(principal, AgentPrincipal):
            return await deps.group_permissions.current(principal)
        return principal

    return dependency


def require_agent(permission: str | None = None) -> Callable[..., AgentPrincipal]:
    """An agent access token, optionally with ``permission``."""

    def dependency(principal: Principal = Depends(require_principal())) -> AgentPrincipal:
        if not isinstance(principal, AgentPrincipal):
            raise ApiError(403, "forbidden", "agents only")
        if permission is not None and not principal.can(permission):
            raise ApiError(403, "forbidden", f"missing permission {permission}")
        return principal

    return dependency
