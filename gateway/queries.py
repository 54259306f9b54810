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
        raise api_error(exc, statuses) from None
    except RequestTimeout:
        raise ApiError(503, "unavailable", f"the {query.SERVICE} service did not answer") from None


def api_error(exc: RemoteError, statuses: dict[str, int] | None = None) -> ApiError:
    """A service's refusal as the API's error: 400 unless mapped. A query that failed in the
    service (``internal``) is the server's fault, a 500 that names nothing of its inside."""
    if exc.code == "internal":
        return ApiError(500, "internal", "internal error")
    return ApiError((statuses or {}).get(exc.code, 400), exc.code, exc.message)
