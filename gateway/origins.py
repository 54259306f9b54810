"""Origin checks for websockets (CORS does not cover them; see OWASP WebSocket cheat sheet).

Visitors: the page's Origin must be in the tenant's ``allowed_origins`` (empty = any); once
sites are named, a socket without an Origin header is refused too (it names no allowed site,
and a non-browser client could otherwise stand in for any page).
Agents: the console is served by the gateway itself, so a browser Origin must be ours;
an agent client without an Origin header is not a browser and cannot be cross-site hijacked.

When the admin service does not answer, a tenant whose sites this gateway has learnt keeps
being checked against the last list it learnt (fail closed: an outage must not open a
restricted widget to every site). Only a tenant never learnt since the gateway started is
let through, logged, rather than refusing every widget of every tenant during an outage.
"""

from urllib.parse import urlparse

import structlog

from contracts.settings import site_origin
from gateway.auth.tokens import AgentPrincipal, Principal
from gateway.tenant_settings import TenantSettingsCache

log = structlog.get_logger(__name__)


class OriginPolicy:
    def __init__(self, tenant_settings: TenantSettingsCache, public_url: str) -> None:
        self._tenant_settings = tenant_settings
        self._public_host = urlparse(public_url).netloc
        # Outlives the settings cache on purpose: it is what an outage falls back to.
        self._last_known: dict[str, tuple[str, ...]] = {}

    async def allowed(self, principal: Principal, origin: str | None, host: str) -> bool:
        if isinstance(principal, AgentPrincipal):
            return not origin or urlparse(origin).netloc in (host, self._public_host)
        return await self.site_allowed(principal.tenant, origin, host)

    async def site_allowed(self, tenant: str, origin: str | None, host: str) -> bool:
        """May the tenant's widget run on the page of ``origin``? Asked for the visitor's
        socket, and before that by ``POST /api/visitor/session``: a browser reports a refused
        socket upgrade only as a dropped connection, so the widget learns "not on this site"
        from the session answer instead of reconnecting for ever."""
        allowed = await self._allowed_origins(tenant)
        if not allowed:
            return True
        if not origin:
            # Restricted to named sites: a socket that names no site is not one of them.
            return False
        return site_origin(origin) in allowed or urlparse(origin).netloc == host

    async def _allowed_origins(self, tenant: str) -> tuple[str, ...]:
        settings = await self._tenant_settings.get(tenant)
        if settings is not None:
            # compared as browsers send them (a list saved before sites were normalised may
            # hold capitals)
            allowed = tuple(site_origin(o) for o in settings.allowed_origins)
            self._last_known[tenant] = allowed
            return allowed
        if tenant in self._last_known:
            return self._last_known[tenant]
        # LIMIT: never learnt and unavailable: allowed (see the module docstring).
        log.warning("origin_unknown_allowed", tenant=tenant)
        return ()
