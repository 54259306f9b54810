"""Asking a service a question over the bus from an HTTP route, with the API's error shape."""

from typing import TypeVar

from contracts.queries import Query
from gateway.auth.http import ApiError
from gateway.deps import GatewayDeps
from relaydesk.bus import RemoteError, RequestTimeout

R = TypeVar("R")


async def ask(deps: GatewayDeps, query: Query[R], statuses: dict[str, int] | None = None) -> R:
    """The typed answer; a remote error becomes its HTTP status (400 unless mapped), a
    timeout 503."""
    try:
        return await deps.rpc.ask(query, timeout=deps.settings.request_timeout_s)
    except RemoteError as exc:
        raise ApiError((statuses or {}).get(exc.code, 400), exc.code, exc.message) from None
    except RequestTimeout:
        raise ApiError(503, "unavailable", f"the {query.SERVICE} service did not answer") from None
