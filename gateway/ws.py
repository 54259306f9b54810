"""The websocket endpoint: handshake checks, then a read loop dispatching client ops.

Handshake (before accept): the client address under its socket limits (else HTTP 429,
``gateway/ws_limits.py``), token verified (agent access or visitor) and Origin allowed
(else HTTP 403). Then ``hello``, the missed events when ``resume_from`` is given (a value
that is not a position of the log: an ``error`` frame and close 4400), and live events.
Malformed, oversized or unknown text frames get an ``error`` frame and the connection
keeps serving; a binary frame closes it with 1003 (the protocol is JSON text); repeated
rate-limit violations close with 4429 (typing signals have a budget of their own,
``gateway/frame_budget.py``).
"""

import asyncio
import math
import re
import time
from typing import Any

import orjson
import structlog
from fastapi import WebSocket
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, QueryParams
from starlette.types import Receive, Scope, Send

from gateway.auth.tokens import AgentPrincipal, InvalidToken, Principal
from gateway.background import in_background
from gateway.deps import GatewayDeps
from gateway.frame_budget import FrameBudget
from gateway.immediate_write import protocol_of
from gateway.ops import OpError
from gateway.sessions import (
    CLOSE_BAD_RESUME_FROM,
    CLOSE_RATE_LIMITED,
    CLOSE_TOKEN_EXPIRED,
    CLOSE_UNSUPPORTED_DATA,
    Session,
)
from gateway.ws_limits import Refused
from relaydesk.metrics import WEBSOCKET_CONNECTIONS

log = structlog.get_logger(__name__)

RATE_VIOLATIONS_BEFORE_CLOSE = 50
PROTOCOL_VERSION = 1
# A position a little ahead of this gateway's tail may come from another gateway that read
# further: wait this long for the tail to get there before calling it past the end.
RESUME_AHEAD_WAIT_S = 2.0
POSITION = re.compile(r"[0-9]{1,18}")


async def websocket_endpoint(websocket: WebSocket, deps: GatewayDeps) -> None:
    address = websocket.client.host if websocket.client else ""
    try:
        deps.ws_limits.opening(address)
    except Refused as refused:
        log.info("ws_refused", reason="address_limit", address=address)
        await websocket.send_denial_response(
            JSONResponse(
                {"error": {"code": "rate_limited", "message": refused.message}},
                status_code=429,
                headers={"Retry-After": str(max(1, math.ceil(refused.retry_after_s)))},
            )
        )
        return
    try:
        await _serve(websocket, deps)
    finally:
        deps.ws_limits.closed(address)


async def websocket_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """``/ws`` as a bare ASGI app (gateway/server.py routes it past the HTTP middleware)."""
    websocket = WebSocket(scope, receive, send)
    await websocket_endpoint(websocket, websocket.app.state.deps)


async def _serve(websocket: WebSocket, deps: GatewayDeps) -> None:
    # The query and headers are read into locals of the handshake, not through
    # ``websocket.query_params`` / ``.headers``, which would keep parsed copies (the token
    # among them) on the socket for its whole life.
    query = QueryParams(websocket.scope["query_string"])
    principal = await _authenticate(websocket, query.get("token", ""), deps)
    if principal is None:
        return
    raw_resume = query.get("resume_from")
    del query
    resume_from = await _resume_position(raw_resume, deps)
    await websocket.accept()
    if raw_resume not in (None, "") and resume_from is None:
        await _refuse_resume(websocket, raw_resume, deps)
        return
    # Starlette keeps the ASGI send it was given as ``_send``: uvicorn's protocol is behind it.
    protocol = protocol_of(websocket._send)
    session = Session(websocket, principal, deps.settings.ws_queue_limit, protocol)
    expiry = asyncio.get_running_loop().call_later(
        max(0.0, principal.expires_at - time.time()), session.close, CLOSE_TOKEN_EXPIRED
    )
    session.send(
        {
            "t": "hello",
            "protocol": PROTOCOL_VERSION,
            "position": deps.tailer.head,
            "session": {
                "kind": principal.kind,
                "id": principal.actor_id,
                "tenant": principal.tenant,
            },
        }
    )
    if not deps.tailer.attach(session, resume_from):
        session.send({"t": "resync", "reason": "too_far_behind"})
        deps.tailer.attach(session, None)
    if isinstance(principal, AgentPrincipal):
        deps.presence.socket_opened(principal)
    log.info(
        "ws_opened", kind=principal.kind, tenant=principal.tenant, resumed=resume_from is not None
    )
    connections = WEBSOCKET_CONNECTIONS.labels(principal.kind)
    connections.inc()
    try:
        await _read_loop(websocket, session, deps)
    finally:
        connections.dec()
        expiry.cancel()
        deps.sessions.remove(session)
        session.close(session.close_code or 1000)
        await session.wait_written(timeout=2)
        log.info("ws_closed", kind=principal.kind, tenant=principal.tenant, code=session.close_code)
        if isinstance(principal, AgentPrincipal):  # reported if none opens soon (presence.py)
            deps.presence.socket_closed(principal)


async def _authenticate(websocket: WebSocket, token: str, deps: GatewayDeps) -> Principal | None:
    try:
        principal = deps.tokens.verify_any(token)
    except InvalidToken as exc:
        log.info("ws_refused", reason=exc.reason)
        await websocket.close(code=1008)
        return None
    if deps.revocations.is_revoked(principal):
        log.info("ws_refused", reason="revoked")
        await websocket.close(code=1008)
        return None
    if isinstance(principal, AgentPrincipal):  # what its groups grant now, as over HTTP
        principal = await deps.group_permissions.current(principal)
    headers = Headers(scope=websocket.scope)
    if not await deps.origins.allowed(principal, headers.get("origin"), headers.get("host", "")):
        log.info("ws_refused", reason="origin", tenant=principal.tenant)
        await websocket.close(code=1008)
        return None
    return principal


async def _read_loop(websocket: WebSocket, session: Session, deps: GatewayDeps) -> None:
    budget = FrameBudget(deps.settings)
    max_bytes = deps.settings.ws_max_frame_bytes
    receive = websocket.receive
    task = asyncio.current_task()
    assert task is not None
    while not session.over:
        session.reading()  # the session's end (slow consumer, expiry) interrupts the wait
        try:
            message = await receive()
        except asyncio.CancelledError:
            if session.interrupted(task):
                return
            raise
        finally:
            session.read()
        if session.over or message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            # JSON text frames only (docs/protocol.md): a binary frame is not executed.
            log.info("ws_binary_frame_closed", tenant=session.principal.tenant)
            session.close(CLOSE_UNSUPPORTED_DATA)
            return
        frame = _decode(text, max_bytes)
        fields = frame if isinstance(frame, dict) else {}
        wait_s = budget.take(fields.get("op"))
        if wait_s is not None:
            session.send(
                {
                    "t": "error",
                    "id": _frame_id(fields),
                    "code": "rate_limited",
                    "message": "slow down; resend later with the same id",
                    # When a resend can succeed: a client that waits this long resends
                    # once, in order, instead of guessing (and being refused again).
                    "retry_after_ms": math.ceil(wait_s * 1000),
                }
            )
            if budget.refusals > RATE_VIOLATIONS_BEFORE_CLOSE:
                session.close(CLOSE_RATE_LIMITED)
            continue
        in_background(_handle_frame(frame, session, deps))


def _decode(text: str, max_bytes: int) -> dict[str, Any] | OpError:
    """The frame as a JSON object, or the error that answers it (parsed once, before the
    budget: typing frames are counted apart)."""
    if len(text) > max_bytes:
        return OpError("too_large", f"frames are limited to {max_bytes} bytes")
    try:
        frame: object = orjson.loads(text)
    except orjson.JSONDecodeError:
        return OpError("bad_frame", "frames must be JSON objects")
    if not isinstance(frame, dict):
        return OpError("bad_frame", "frames must be JSON objects")
    return frame


async def _handle_frame(
    frame: dict[str, Any] | OpError, session: Session, deps: GatewayDeps
) -> None:
    frame_id = None
    try:
        if isinstance(frame, OpError):
            raise frame
        frame_id = _frame_id(frame)
        if frame.get("op") == "ping":
            session.send({"t": "pong", "id": frame_id})
            return
        result = await deps.operations.handle(session.principal, frame)
        session.send({"t": "ack", "id": frame_id, **result})
    except OpError as exc:
        error: dict[str, object] = {
            "t": "error",
            "id": frame_id,
            "code": exc.code,
            "message": exc.message,
        }
        if exc.field is not None:
            error["field"] = exc.field
        session.send(error)
    except Exception:
        log.exception("ws_op_failed")
        session.send(
            {"t": "error", "id": frame_id, "code": "internal", "message": "internal error"}
        )


def _frame_id(frame: dict[str, Any]) -> str | None:
    return frame.get("id") if isinstance(frame.get("id"), str) else None


async def _resume_position(raw: str | None, deps: GatewayDeps) -> int | None:
    """``resume_from`` as a position of the log, or None (absent, or not one)."""
    if raw in (None, "") or not POSITION.fullmatch(raw or ""):
        return None
    position = int(raw or "")
    if position > deps.tailer.head and not await deps.tailer.wait_for_position(
        position, RESUME_AHEAD_WAIT_S
    ):
        return None  # past the end of the log
    return position


async def _refuse_resume(websocket: WebSocket, raw: str, deps: GatewayDeps) -> None:
    log.info("ws_refused", reason="resume_from")
    await websocket.send_text(
        orjson.dumps(
            {
                "t": "error",
                "id": None,
                "code": "invalid_payload",
                "field": "resume_from",
                "message": f"resume_from must be a position of the log, 0 to {deps.tailer.head}"
                f" (got {raw[:40]!r}); reconnect without it and reload",
            }
        ).decode()
    )
    await websocket.close(CLOSE_BAD_RESUME_FROM, reason="bad resume_from")
