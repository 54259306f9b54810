"""Request bodies are limited per route while they are read, before anything parses them.

Without this, FastAPI reads a whole body into memory (JSON) or onto disk (multipart)
before a route's model, its authentication or its own size check runs: 32 MB sent to the
login form were read to answer 400. Here:

- a declared ``Content-Length`` above the route's limit is answered ``413 too_large`` at
  once, and the body is never read;
- a body without a declared length (chunked) is counted as it arrives and refused with 413
  as soon as it passes the limit;
- a body that stops arriving for ``RELAYDESK_HTTP_BODY_TIMEOUT_S`` is answered 408;
- an answer sent before a large body was read to its end (more than ``DRAIN_MAX_BYTES``
  left, or a chunked body) carries ``Connection: close``, so the server does not go on
  reading and discarding what the client still sends; a small rest is read and dropped
  (closing on unread data resets the connection, and the client may lose the answer).

Limits: the credential routes (login, refresh, logout, visitor session, sign-up) take
``RELAYDESK_HTTP_AUTH_BODY_MAX_BYTES``; uploads ``RELAYDESK_UPLOAD_MAX_BYTES`` at most, which
the upload route lowers to the tenant's limit once it knows who is calling
(:func:`lower_body_limit`); every other route ``RELAYDESK_HTTP_BODY_MAX_BYTES``.
"""

import asyncio
import re
from dataclasses import dataclass

import orjson
from fastapi import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaydesk.settings import Settings

CREDENTIAL_PATHS = frozenset(
    {
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/visitor/session",
        "/api/signup",
    }
)
UPLOAD_PATH = re.compile(r"^/api/conversations/[^/]+/attachments/?$")
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file itself
SCOPE_KEY = "relaydesk.body_budget"
DRAIN_MAX_BYTES = 64 * 1024


class BodyRefused(HTTPException):
    """Answered in the API's error shape by the app's HTTPException handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, detail={"code": code, "message": message})


def too_large(limit: int, message: str | None = None) -> BodyRefused:
    return BodyRefused(
        413, "too_large", message or f"request bodies here are limited to {limit} bytes"
    )


@dataclass
class BodyBudget:
    limit: int
    declared: int | None  # Content-Length, when given
    received: int = 0
    complete: bool = False  # the body has been read to its end (or there is none)
    message: str | None = None  # what a refusal says, when the route knows better

    def refusal(self) -> BodyRefused:
        return too_large(self.limit, self.message)

    def much_left(self) -> bool:
        """Unread body worth closing the connection over."""
        if self.complete:
            return False
        return self.declared is None or self.declared - self.received > DRAIN_MAX_BYTES


def lower_body_limit(request: Request, limit: int, message: str | None = None) -> None:
    """Lower this request's limit (a route that knows more, e.g. the tenant's upload size);
    a body declared larger is refused now, before it is read."""
    budget: BodyBudget | None = request.scope.get(SCOPE_KEY)
    if budget is None:
        return
    if limit < budget.limit:
        budget.limit, budget.message = limit, message
    if (budget.declared or 0) > budget.limit or budget.received > budget.limit:
        raise budget.refusal()


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self._default = settings.http_body_max_bytes
        self._credentials = settings.http_auth_body_max_bytes
        self._upload = settings.upload_max_bytes + MULTIPART_OVERHEAD
        self._idle_s = settings.http_body_timeout_s

    def limit_for(self, method: str, path: str) -> int:
        if path in CREDENTIAL_PATHS:
            return self._credentials
        if method == "POST" and UPLOAD_PATH.match(path):
            return self._upload
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self.limit_for(scope["method"], scope["path"])
        declared = _content_length(headers.get(b"content-length"))
        if declared is not None and declared > limit:
            await _answer(send, too_large(limit))
            return
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        budget = BodyBudget(limit, declared, complete=not declared and not chunked)
        scope[SCOPE_KEY] = budget
        started = False

        async def limited_receive() -> Message:
            if budget.complete:
                return await receive()  # what is left is the disconnect
            try:
                message = await asyncio.wait_for(receive(), self._idle_s)
            except TimeoutError:
                raise BodyRefused(
                    408, "timeout", f"the body stopped arriving for {self._idle_s:g} s"
                ) from None
            if message["type"] == "http.request":
                budget.received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    budget.complete = True
                if budget.received > budget.limit:
                    raise budget.refusal()
            else:
                budget.complete = True  # disconnected: nothing more will come
            return message

        async def send_closing_early(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if budget.much_left():
                    # Answered before the body was read: close rather than read the rest.
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"connection", b"close")],
                    }
            await send(message)

        try:
            await self.app(scope, limited_receive, send_closing_early)
        except BodyRefused as refused:  # raised where no handler turned it into an answer
            if started:
                raise
            await _answer(send, refused)


def _content_length(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None  # the HTTP parser refuses it before we are called


async def _answer(send: Send, refused: BodyRefused) -> None:
    body = orjson.dumps({"error": refused.detail})
    await send(
        {
            "type": "http.response.start",
            "status": refused.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
