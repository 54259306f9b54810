"""Origin checks for websockets (CORS does not cover them; see OWASP WebSocket cheat sheet).

Visitors: the page's Origin must be in the tenant's ``allowed_origins`` (empty = any).
Agents: the console is served by the gateway itself, so a browser Origin must be ours.
Clients without an Origin header are not browsers and cannot be cross-site hijacked.
"""

from urllib.parse import urlparse

from gateway.auth.tokens import AgentPrincipal, Principal
from gateway.tenant_settings import TenantSettingsCache


class OriginPolicy:
    def __init__(self, tenant_settings: TenantSettingsCache, public_url: str) -> None:
        self._tenant_settings = tenant_settings
        self._public_host = urlparse(public_url).netloc

    async def allowed(self, principal: Principal, origin: str | None, host: str) -> bool:
        if not origin:
            return True
        origin_host = urlparse(origin).netloc
        if isinstance(principal, AgentPrincipal):
            return origin_host in (host, self._public_host)
        settings = await self._tenant_settings.get(principal.tenant)
        # LIMIT: without the admin service we cannot know the tenant's sites; we allow
        # rather than lock every widget out (the cache logs that settings were unavailable).
        allowed = tuple(o.rstrip("/") for o in (settings or {}).get("allowed_origins") or ())
        if not allowed:
            return True
        return origin.rstrip("/") in allowed or origin_host == host
