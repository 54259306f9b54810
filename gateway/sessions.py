"""One websocket session: its principal, a bounded send queue, and the writer task.

Slow sockets must not stall the tailer: frames go into a bounded queue without waiting;
when it overflows the session is closed with 4409 (resumable with ``resume_from``).
"""

import asyncio
from collections import Counter, defaultdict

import orjson
import structlog
from starlette.websockets import WebSocket, WebSocketState

from gateway.auth.tokens import Principal

log = structlog.get_logger(__name__)

CLOSE_SLOW_CONSUMER = 4409
CLOSE_TOKEN_EXPIRED = 4401
CLOSE_RATE_LIMITED = 4429
CLOSE_GOING_AWAY = 1012


class Session:
    def __init__(self, websocket: WebSocket, principal: Principal, queue_limit: int) -> None:
        self.websocket = websocket
        self.principal = principal
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=queue_limit)
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.last_position = -1
        self.writer: asyncio.Task[None] | None = None
        self._sending = False

    def send(self, frame: dict) -> None:
        """Queue a frame without waiting; on overflow close the socket as a slow consumer."""
        if self.closed.is_set():
            return
        try:
            self._queue.put_nowait(orjson.dumps(frame))
        except asyncio.QueueFull:
            log.warning("ws_slow_consumer_closed", kind=self.principal.kind, tenant=self.principal.tenant)
            self.close(CLOSE_SLOW_CONSUMER)

    def send_event(self, position: int, event: dict) -> None:
        if position <= self.last_position:
            return  # already delivered (resume buffer and live fan-out overlap)
        self.last_position = position
        self.send({"t": "event", "position": position, "event": event})

    def close(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
        self.closed.set()
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            pass
        if self._sending and self.writer is not None:
            # The peer stopped reading and the kernel buffer is full: a close frame cannot
            # get through either, so give up on this socket now (the client sees the
            # connection drop and resumes with resume_from).
            self.writer.cancel()

    async def write_loop(self) -> None:
        """Drain the queue to the socket until closed; then close the socket with our code."""
        try:
            while not self.closed.is_set() or not self._queue.empty():
                frame = await self._queue.get()
                if frame is None:
                    break
                self._sending = True
                await self.websocket.send_text(frame.decode())
                self._sending = False
        except Exception as exc:  # the peer went away; the reader notices too
            log.debug("ws_write_ended", error=type(exc).__name__)
        finally:
            self.closed.set()
            if self.close_code is not None and self.websocket.application_state == WebSocketState.CONNECTED and not self._sending:
                try:
                    await asyncio.wait_for(self.websocket.close(code=self.close_code), 2)
                except Exception:  # already closing, or the peer is stuck
                    pass


class SessionRegistry:
    """Sessions by tenant, so fan-out looks only at sockets of the event's tenant."""

    def __init__(self) -> None:
        self._by_tenant: dict[str, set[Session]] = defaultdict(set)
        self.close_codes: Counter[int] = Counter()  # for health and tests: why sockets ended

    def add(self, session: Session) -> None:
        self._by_tenant[session.principal.tenant].add(session)

    def remove(self, session: Session) -> None:
        self.close_codes[session.close_code or 1000] += 1
        sessions = self._by_tenant.get(session.principal.tenant)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_tenant[session.principal.tenant]

    def of_tenant(self, tenant: str) -> tuple[Session, ...]:
        return tuple(self._by_tenant.get(tenant, ()))

    def agent_sessions(self, tenant: str, agent_id: str) -> list[Session]:
        return [s for s in self.of_tenant(tenant) if s.principal.kind == "agent" and s.principal.actor_id == agent_id]

    def all(self) -> list[Session]:
        return [s for sessions in self._by_tenant.values() for s in sessions]

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_tenant.values())
