"""A per-client-address limit on the credential endpoints: login, refresh, sign-up.

The admin service's lockout (``agent_service/admin/passwords.py``) stops guessing one
account's password; it does nothing against one client trying a few passwords on many
accounts (credential stuffing) or creating sign-ups in bulk. One token bucket per address,
shared by the three endpoints so that alternating between them buys nothing. Refused
with ``429 rate_limited`` and ``Retry-After``.

The address is the one uvicorn reports: the peer, or the client named by
``X-Forwarded-For`` when the peer is a proxy listed in ``--forwarded-allow-ips``.
LIMIT: counters live in each gateway process; N gateways allow N times the rate, and
many people behind one NAT share one budget (raise RELAYDESK_AUTH_RATE_* for them).
"""

import math
from collections import OrderedDict
from typing import Any

import structlog
from fastapi import Request

from gateway.auth.http import ApiError, get_deps
from gateway.ratelimit import TokenBucket

log = structlog.get_logger(__name__)

MAX_ADDRESSES = 100_000  # least recently seen addresses are forgotten (their budget starts afresh)
EXTRAS_KEY = "credential_throttle"


class AddressThrottle:
    def __init__(self, rate_per_s: float, burst: int, capacity: int = MAX_ADDRESSES) -> None:
        self._rate, self._burst, self._capacity = rate_per_s, burst, capacity
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def retry_after(self, address: str) -> float | None:
        """Take one attempt for ``address``: None when allowed, else seconds to wait."""
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = TokenBucket(self._rate, self._burst)
            while len(self._buckets) > self._capacity:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(address)
        return None if bucket.take() else bucket.retry_after()


def _throttle(deps: Any) -> AddressThrottle:
    # One instance per gateway, shared by the auth and sign-up routers.
    if EXTRAS_KEY not in deps.extras:
        deps.extras[EXTRAS_KEY] = AddressThrottle(
            deps.settings.auth_rate_per_min / 60.0, deps.settings.auth_rate_burst
        )
    return deps.extras[EXTRAS_KEY]


async def limit_credential_attempts(request: Request) -> None:
    """FastAPI dependency for the credential endpoints."""
    address = request.client.host if request.client else "unknown"
    wait = _throttle(get_deps(request)).retry_after(address)
    if wait is not None:
        log.info("credential_rate_limited", path=request.url.path, address=address)
        raise ApiError(
            429,
            "rate_limited",
            "too many sign-in attempts from this address; retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
