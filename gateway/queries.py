"""Asking a service a question over the bus from an HTTP route, with the API's error shape."""

from typing import Any

from gateway.auth.http import ApiError
from gateway.deps import GatewayDeps
from relaydesk.bus import RemoteError, RequestTimeout


async def ask(
    deps: GatewayDeps,
    service: str,
    name: str,
    params: dict[str, Any],
    statuses: dict[str, int] | None = None,
) -> Any:
    """The answer; a remote error becomes its HTTP status (400 unless mapped), a timeout 503."""
    try:
        return await deps.rpc.query(service, name, params, timeout=deps.settings.request_timeout_s)
    except RemoteError as exc:
        raise ApiError((statuses or {}).get(exc.code, 400), exc.code, exc.message) from None
    except RequestTimeout:
        raise ApiError(503, "unavailable", f"the {service} service did not answer") from None
