"""The gateway's health on its public port: ``/healthz`` (alive) and ``/readyz`` (ready).

The health server of every process (relaydesk/health.py, its own port, loopback by default)
is what orchestrators and ``relaydesk up`` probe. The gateway's public port is what a load
balancer or an uptime monitor outside reaches, so it answers the same two questions:

- ``/healthz``: the process answers. Cheap, touches nothing: a liveness probe that would
  restart a gateway whose broker is away would only make things worse.
- ``/readyz``: the gateway can do its job, by the same checks as its health port's
  ``/readyz`` (broker, store, log reader, routing answering a query). 503 when one fails:
  without routing no chat starts and no agent signs in, however alive the process is.

Anyone gets the status; the details (sockets, log position, each check) only a loopback
client (the real client address: proxies only when trusted) or the bearer of
``RELAYDESK_HEALTH_TOKEN``. The checks run at most once a second whoever asks: each asks
the agent service a query, and this endpoint is public.
"""

import asyncio
import hmac
import ipaddress
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from relaydesk.health import Readiness
from relaydesk.settings import Settings

REPORT_TTL_S = 1.0  # one run of the checks answers every request within this long


class CachedReadiness:
    """The readiness report, run by at most one caller at a time and kept ``ttl_s``."""

    def __init__(self, readiness: Readiness, ttl_s: float = REPORT_TTL_S) -> None:
        self._readiness = readiness
        self._ttl_s = ttl_s
        self._report: dict[str, dict[str, Any]] | None = None
        self._at = 0.0
        self._running: asyncio.Task[dict[str, dict[str, Any]]] | None = None

    async def report(self) -> dict[str, dict[str, Any]]:
        if self._report is not None and time.monotonic() - self._at < self._ttl_s:
            return self._report
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run())
        # shield: a caller that goes away does not cancel the run the others wait for
        return await asyncio.shield(self._running)

    async def _run(self) -> dict[str, dict[str, Any]]:
        report = await self._readiness.report()
        self._report, self._at = report, time.monotonic()
        return report


def may_see_details(request: Request, settings: Settings) -> bool:
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    token = settings.health_token.get_secret_value() if settings.health_token else ""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


async def ready_answer(
    request: Request, settings: Settings, readiness: CachedReadiness
) -> JSONResponse:
    checks = await readiness.report()
    ready = all(check["ok"] for check in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready"}
    if may_see_details(request, settings):
        body["checks"] = checks
    return JSONResponse(body, status_code=200 if ready else 503)
