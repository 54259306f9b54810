"""Which tenants exist, as the gateway needs to know before it hands out a visitor token.

A visitor session for a tenant nobody created used to get a token, and its ``start`` and
``send`` were acked and archived: anyone could write into the log under any name. The
admin service answers ``tenant.get``; a tenant found is remembered for good (tenants are
not deleted), one not found for ``UNKNOWN_S`` only, and forgotten as soon as the log shows
its ``tenant.created`` (``GatewayDeps._on_event``), so a workspace created a moment ago is
served at once.
"""

import time
from collections import OrderedDict

import structlog

from contracts.queries.admin import TenantGetQuery
from relaydesk.bus import RemoteError
from relaydesk.bus.rpc import RpcClient

log = structlog.get_logger(__name__)

UNKNOWN_S = 5.0
LOOKUP_TIMEOUT_S = 1.5
MAX_KNOWN = 100_000  # least recently asked are forgotten, then asked again


class TenantDirectory:
    def __init__(self, rpc: RpcClient, *, timeout_s: float = LOOKUP_TIMEOUT_S) -> None:
        self._rpc = rpc
        self._timeout_s = timeout_s
        self._known: OrderedDict[str, None] = OrderedDict()
        self._unknown_until: dict[str, float] = {}

    def created(self, tenant: str) -> None:
        """The log shows the tenant's creation."""
        self._unknown_until.pop(tenant, None)
        self._remember(tenant)

    async def exists(self, tenant: str) -> bool | None:
        """True or False; None when the admin service does not answer."""
        if tenant in self._known:
            self._known.move_to_end(tenant)
            return True
        if self._unknown_until.get(tenant, 0.0) > time.monotonic():
            return False
        try:
            await self._rpc.ask(TenantGetQuery(tenant=tenant), timeout=self._timeout_s)
        except RemoteError as exc:
            if exc.code != "not_found":
                log.warning("tenant_lookup_failed", tenant=tenant, error=exc.code)
                return None
            self._unknown_until[tenant] = time.monotonic() + UNKNOWN_S
            if len(self._unknown_until) > MAX_KNOWN:
                self._unknown_until.clear()  # a flood of made-up names: start over
            return False
        except Exception as exc:  # noqa: BLE001 - admin unreachable: the caller answers 503
            log.warning("tenant_lookup_failed", tenant=tenant, error=type(exc).__name__)
            return None
        self._remember(tenant)
        return True

    def _remember(self, tenant: str) -> None:
        self._known[tenant] = None
        self._known.move_to_end(tenant)
        while len(self._known) > MAX_KNOWN:
            self._known.popitem(last=False)
