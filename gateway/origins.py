"""Origin checks for websockets (CORS does not cover them; see OWASP WebSocket cheat sheet).

Visitors: the page's Origin must be in the tenant's ``allowed_origins`` (empty = any).
Agents: the console is served by the gateway itself, so a browser Origin must be ours.
Clients without an Origin header are not browsers and cannot be cross-site hijacked.
"""

import time
from urllib.parse import urlparse

import structlog

from gateway.auth.tokens import AgentPrincipal, Principal
from relaydesk.bus.rpc import RpcClient

log = structlog.get_logger(__name__)

CACHE_S = 30.0
LOOKUP_TIMEOUT_S = 1.5


class OriginPolicy:
    def __init__(self, rpc: RpcClient, public_url: str) -> None:
        self._rpc = rpc
        self._public_host = urlparse(public_url).netloc
        self._cache: dict[str, tuple[float, tuple[str, ...] | None]] = {}

    def forget(self, tenant: str) -> None:
        self._cache.pop(tenant, None)

    async def allowed(self, principal: Principal, origin: str | None, host: str) -> bool:
        if not origin:
            return True
        origin_host = urlparse(origin).netloc
        if isinstance(principal, AgentPrincipal):
            return origin_host in (host, self._public_host)
        allowed = await self._allowed_origins(principal.tenant)
        if allowed is None or not allowed:
            return True
        return origin.rstrip("/") in allowed or origin_host == host

    async def _allowed_origins(self, tenant: str) -> tuple[str, ...] | None:
        cached = self._cache.get(tenant)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            settings = await self._rpc.query("admin", "tenant.settings", {"tenant": tenant}, timeout=LOOKUP_TIMEOUT_S)
            origins: tuple[str, ...] | None = tuple(o.rstrip("/") for o in settings.get("allowed_origins") or ())
        except Exception as exc:
            # LIMIT: without the admin service we cannot know the tenant's sites; we allow
            # rather than lock every widget out, and say so in the log.
            log.warning("origin_settings_unavailable", tenant=tenant, error=type(exc).__name__)
            origins = None
        self._cache[tenant] = (time.monotonic() + CACHE_S, origins)
        return origins
