"""A per-client-address limit on the credential endpoints: login, refresh, sign-up.

The admin service's lockout (``agent_service/admin/passwords.py``) stops guessing one
account's password; it does nothing against one client trying a few passwords on many
accounts (credential stuffing) or creating sign-ups in bulk. One token bucket per address,
shared by the three endpoints so that alternating between them buys nothing. Refused
with ``429 rate_limited`` and ``Retry-After``.

The address is the one uvicorn reports: the peer, or the client named by
``X-Forwarded-For`` when the peer is one of ``RELAYDESK_TRUSTED_PROXIES``
(``gateway/server.py``; none by default).
LIMIT: counters live in each gateway process; N gateways allow N times the rate, and
many people behind one NAT share one budget (raise RELAYDESK_AUTH_RATE_* for them).
"""

import math

import structlog
from fastapi import Request

from gateway.auth.http import ApiError, get_deps

log = structlog.get_logger(__name__)


async def limit_credential_attempts(request: Request) -> None:
    """FastAPI dependency for the credential endpoints."""
    address = request.client.host if request.client else "unknown"
    wait = get_deps(request).credential_throttle.retry_after(address)
    if wait is not None:
        log.info("credential_rate_limited", path=request.url.path, address=address)
        raise ApiError(
            429,
            "rate_limited",
            "too many sign-in attempts from this address; retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
