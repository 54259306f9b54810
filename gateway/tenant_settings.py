"""A tenant's settings as the gateway sees them: asked of the admin service, cached briefly.

Websocket origin checks and message reads need settings on every connect and every
conversation opened; a bus round trip each time would sit on the request path. An entry
is dropped as soon as the log shows the tenant's ``tenant.settings_changed`` (see
``GatewayDeps._on_event``) and after ``CACHE_S`` anyway, so a missed event costs at most
that much staleness.
"""

import time

import structlog

from contracts.queries.admin import TenantSettingsQuery
from contracts.settings import DEFAULTS, TenantSettings
from relaydesk.bus import RemoteError
from relaydesk.bus.rpc import RpcClient

log = structlog.get_logger(__name__)

CACHE_S = 30.0
LOOKUP_TIMEOUT_S = 1.5


class TenantSettingsCache:
    def __init__(
        self, rpc: RpcClient, *, cache_s: float = CACHE_S, timeout_s: float = LOOKUP_TIMEOUT_S
    ) -> None:
        self._rpc = rpc
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._cache: dict[str, tuple[float, TenantSettings | None]] = {}
        # Bumped by forget(): a lookup that started before a change must not store the old answer.
        self._generation: dict[str, int] = {}

    def forget(self, tenant: str) -> None:
        self._cache.pop(tenant, None)
        self._generation[tenant] = self._generation.get(tenant, 0) + 1

    async def get(self, tenant: str) -> TenantSettings | None:
        """The tenant's settings (defaults for a tenant without a record); None when unavailable."""
        cached = self._cache.get(tenant)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        generation = self._generation.get(tenant, 0)
        try:
            settings = await self._rpc.ask(
                TenantSettingsQuery(tenant=tenant), timeout=self._timeout_s
            )
        except RemoteError as exc:
            if exc.code != "not_found":
                self._unavailable(tenant, generation, exc.code)
                return None
            settings = DEFAULTS
        except Exception as exc:  # noqa: BLE001 - admin unreachable: None, the caller says so
            self._unavailable(tenant, generation, type(exc).__name__)
            return None
        self._store(tenant, generation, settings)
        return settings

    def _unavailable(self, tenant: str, generation: int, error: str) -> None:
        # Callers decide what "unknown" means for them (origins: allow; reads: the default).
        # Remembered too, so an admin outage does not cost every request a lookup timeout.
        log.warning("tenant_settings_unavailable", tenant=tenant, error=error)
        self._store(tenant, generation, None)

    def _store(self, tenant: str, generation: int, settings: TenantSettings | None) -> None:
        if self._generation.get(tenant, 0) == generation:
            self._cache[tenant] = (time.monotonic() + self._cache_s, settings)
