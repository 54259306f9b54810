"""One structured log line per HTTP request, and the request metrics.

``http_request`` with ``method``, ``route`` (the route's template, ``/api/conversations/
{conversation_id}``, never the raw path: ids stay out of the log and out of metric labels),
``status``, ``duration_ms``, ``tenant`` (when the caller was authenticated) and
``correlation_id``. Never the query string (a websocket or download token may ride in it),
headers or bodies.

The correlation id is the client's ``X-Request-Id`` when it is a short plain token, else a
new one; it is bound to every log line written while the request runs and sent back in
``X-Request-Id``, so a client's report can be found in the logs.

Pure ASGI (no BaseHTTPMiddleware): it must not buffer bodies or break streaming downloads.
Websocket handshakes pass through; the websocket endpoint logs its own ``ws_opened``.
"""

import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaydesk.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS, series
from relaydesk.tracing import span

log = structlog.get_logger("gateway.access")

REQUEST_ID_HEADER = b"x-request-id"
SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
UNMATCHED = "unmatched"  # a path no route answers: one label, whatever was asked


def note_tenant(scope: Scope, tenant: str) -> None:
    """Record the authenticated caller's tenant for the request's access line."""
    scope.setdefault("state", {})["tenant"] = tenant


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = _request_id(scope) or uuid.uuid4().hex
        status = 500  # what the server answers when the app fails before starting a response
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                echoed = (REQUEST_ID_HEADER, correlation_id.encode())
                message = {**message, "headers": [*message.get("headers", []), echoed]}
            await send(message)

        with (
            structlog.contextvars.bound_contextvars(correlation_id=correlation_id),
            span(
                "HTTP", kind="server", attributes={"relaydesk.correlation_id": correlation_id}
            ) as traced,
        ):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._record(scope, status, time.perf_counter() - started, correlation_id)
                if traced is not None:  # tracing on: the span is named once the route is known
                    traced.update_name(f"{scope['method']} {_route(scope)}")
                    traced.set_attribute("http.response.status_code", status)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float, correlation_id: str) -> None:
        method = scope["method"]
        route = _route(scope)
        series(HTTP_REQUESTS, method, route, str(status)).inc()
        series(HTTP_REQUEST_SECONDS, method, route).observe(seconds)
        state: dict[str, Any] = scope.get("state") or {}
        log.info(
            "http_request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(seconds * 1000, 2),
            tenant=state.get("tenant"),
            correlation_id=correlation_id,
        )


def _request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER:
            return value.decode() if SAFE_REQUEST_ID.fullmatch(value) else None
    return None


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED
