"""One websocket session: its principal, a bounded send queue, and the writer task.

Slow sockets must not stall the tailer: frames go into a bounded queue without waiting;
when it overflows the session is closed with 4409 (resumable with ``resume_from``).
"""

import asyncio
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import structlog
from starlette.websockets import WebSocket, WebSocketState

from gateway.auth.permissions import SEE_ALL
from gateway.auth.tokens import AgentPrincipal, Principal
from gateway.immediate_write import WebSocketsSansIOProtocol, WriteBatch, write_now

log = structlog.get_logger(__name__)

CLOSE_SLOW_CONSUMER = 4409
CLOSE_TOKEN_EXPIRED = 4401
CLOSE_RATE_LIMITED = 4429
CLOSE_GOING_AWAY = 1012
CLOSE_UNSUPPORTED_DATA = 1003  # a binary frame: the protocol is JSON text
CLOSE_BAD_RESUME_FROM = 4400  # resume_from is not a position of this log


class _Replay:
    """Queue marker: send the replayed backlog here, in order, before what follows."""


_REPLAY = _Replay()


class Session:
    """One socket's outgoing side, and the end of its reading side.

    Memory per idle socket matters (10,000 widgets on one gateway), so an idle session
    holds no task of its own: a frame for a socket with nothing queued is written in the
    call (gateway/immediate_write.py), and a writer task runs only while frames are queued
    (started by the first that must wait, gone when the queue is empty); the send queue is
    a plain list (short; an empty ``asyncio.Queue`` is three deques, ~2.3 KiB), the replay
    backlog exists only while a resume is replayed, the writer keeps no reference to the
    last frame it sent while it waits (orjson's output is a 4 KiB allocation whatever its
    length), and the object has slots. The socket's reader (gateway/ws.py) awaits its
    frames itself; when the session ends while it waits, its task is cancelled and takes
    that back (``interrupted``), instead of racing a receive task against an "ended" future for
    every frame (a task, a wait and two callbacks per frame, and a task per idle socket).
    """

    __slots__ = (
        "_backlog",
        "_protocol",
        "_queue",
        "_queue_limit",
        "_reader",
        "_sending",
        "close_code",
        "last_position",
        "over",
        "principal",
        "websocket",
        "writer",
    )

    def __init__(
        self,
        websocket: WebSocket,
        principal: Principal,
        queue_limit: int,
        protocol: WebSocketsSansIOProtocol | None = None,
    ) -> None:
        self.websocket = websocket
        # uvicorn's protocol of the socket, to write a frame at once when nothing is queued
        # (gateway/immediate_write.py); None: every frame goes through the writer task.
        self._protocol = protocol
        self.principal = principal
        self._queue: list[bytes | _Replay | None] = []  # short: an empty deque is ~700 B
        self._queue_limit = queue_limit
        self.over = False  # closed, or the peer went away: nothing more is sent or read
        self.close_code: int | None = None
        self.last_position = -1
        self.writer: asyncio.Task[None] | None = None  # while frames are queued
        self._sending = False
        self._backlog: deque[bytes] | None = None  # only while a resume is replayed
        self._reader: asyncio.Task[Any] | None = None  # while the reader awaits a frame

    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame without waiting; on overflow close the socket as a slow consumer."""
        self.send_bytes(orjson.dumps(frame))

    def send_bytes(self, data: bytes | _Replay, batch: WriteBatch | None = None) -> None:
        if self.over:
            return
        if len(self._queue) >= self._queue_limit:
            log.warning(
                "ws_slow_consumer_closed", kind=self.principal.kind, tenant=self.principal.tenant
            )
            self.close(CLOSE_SLOW_CONSUMER)
            return
        self._put(data, batch)

    def _put(self, item: bytes | _Replay | None, batch: WriteBatch | None = None) -> None:
        if self.writer is None:  # nothing queued: the frame may go out now, in order
            protocol = self._protocol
            if type(item) is bytes and protocol is not None:
                if batch.add(protocol, item) if batch is not None else write_now(protocol, item):
                    return
            self.writer = asyncio.get_running_loop().create_task(self._write())
        self._queue.append(item)

    def send_event(self, position: int, frame: bytes, batch: WriteBatch | None = None) -> None:
        """Queue an event frame, already serialised (one encoding shared by a whole fan-out);
        with ``batch``, a frame that can go out now is written at the batch's flush."""
        if position <= self.last_position:
            return  # already delivered (resume buffer and live fan-out overlap)
        self.last_position = position
        self.send_bytes(frame, batch)

    def replay(self, frames: list[tuple[int, bytes]]) -> None:
        """Queue what a resuming client missed, whatever its length.

        The backlog does not count against the live queue's bound: it is bounded by the
        resume buffer already, and counting it made a client that missed more than the
        queue holds overflow again at once and resume over and over, one queue at a time.
        """
        fresh = [frame for position, frame in frames if position > self.last_position]
        if frames:
            self.last_position = max(self.last_position, frames[-1][0])
        if fresh:
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.extend(fresh)
            self.send_bytes(_REPLAY)

    def close(self, code: int) -> None:
        """End the session with ``code``: the writer sends what was queued before, then the
        close frame; a reader waiting for a frame returns."""
        if self.close_code is None:
            self.close_code = code
        if self._sending and self.writer is not None:
            # The peer stopped reading and the kernel buffer is full: a close frame cannot
            # get through either, so give up on this socket now (the client sees the
            # connection drop and resumes with resume_from).
            self._end()
            self._queue.clear()
            self.writer.cancel()
        elif not self.over:
            self._end()
            self._put(None)  # past the limit too: the writer must learn it is over

    def _end(self) -> None:
        self.over = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()  # taken back by ``interrupted``: the reader is only waiting

    def reading(self) -> None:
        """The reader (the current task) is about to wait for a frame: if the session ends
        meanwhile, that task is cancelled; ``interrupted`` tells such a cancellation apart."""
        self._reader = asyncio.current_task()

    def read(self) -> None:
        """The reader's wait is over (with a frame, or not)."""
        self._reader = None

    def interrupted(self, task: "asyncio.Task[Any]") -> bool:
        """Whether ``task``'s cancellation was the session ending while it waited (then it
        is taken back, and the reader just returns), not the server cancelling it."""
        return self._reader is None and self.over and task.uncancel() == 0

    async def wait_written(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the writer to finish what it has: after ``close``,
        until the close frame is out."""
        writer = self.writer
        if writer is not None:
            await asyncio.wait({writer}, timeout=timeout)

    def _drain_backlog(self) -> Iterator[bytes]:
        while self._backlog:
            yield self._backlog.popleft()
        self._backlog = None

    async def _send(self, item: bytes | _Replay) -> None:
        for frame in self._drain_backlog() if isinstance(item, _Replay) else (item,):
            self._sending = True
            await self.websocket.send_text(frame.decode())
            self._sending = False

    async def _write(self) -> None:
        """Drain the queue to the socket; at the end marker close it with our code."""
        try:
            while self._queue:
                item = self._queue.pop(0)
                if item is None:
                    self._queue.clear()
                    await self._close_socket()
                    return
                await self._send(item)
                item = None  # not held while waiting: see the class docstring
        except Exception as exc:  # noqa: BLE001 - the peer went away; the reader notices too
            log.debug("ws_write_ended", error=type(exc).__name__)
            self._end()
            self._queue.clear()
        finally:
            self.writer = None

    async def _close_socket(self) -> None:
        if (
            self.close_code is not None
            and self.websocket.application_state == WebSocketState.CONNECTED
            and not self._sending
        ):
            try:
                await asyncio.wait_for(self.websocket.close(code=self.close_code), 2)
            except Exception:  # noqa: BLE001 - already closing, or the peer is stuck
                pass


class SessionRegistry:
    """Sessions indexed for fan-out: agents by tenant, customers by (tenant, visitor).

    A customer only ever sees their own conversations, so an event is offered to the
    tenant's agents and to the sockets of that conversation's visitor, never to every
    socket of the tenant (10,000 idle widgets must not cost 10,000 checks per event).
    """

    def __init__(self) -> None:
        self._agents: dict[str, set[Session]] = defaultdict(set)
        self._customers: dict[tuple[str, str], set[Session]] = defaultdict(set)
        # The same agent sockets again, by agent and for overseers: most events are for one
        # conversation (its agents, the supervisors), and a tenant with hundreds of agents
        # signed in must not cost hundreds of checks per chat message.
        self._by_agent: dict[tuple[str, str], set[Session]] = defaultdict(set)
        self._overseers: dict[str, set[Session]] = defaultdict(set)
        self._count = 0
        self.close_codes: Counter[int] = Counter()  # for health and tests: why sockets ended

    def _bucket(self, session: Session) -> tuple[dict, object]:
        principal = session.principal
        if isinstance(principal, AgentPrincipal):
            return self._agents, principal.tenant
        return self._customers, (principal.tenant, principal.actor_id)

    def _agent_indexes(self, principal: AgentPrincipal) -> Iterator[tuple[dict, object]]:
        yield self._by_agent, (principal.tenant, principal.agent_id)
        if principal.can(SEE_ALL):
            yield self._overseers, principal.tenant

    def add(self, session: Session) -> None:
        index, key = self._bucket(session)
        if session in index[key]:
            return
        index[key].add(session)
        self._count += 1
        if isinstance(session.principal, AgentPrincipal):
            for extra, extra_key in self._agent_indexes(session.principal):
                extra[extra_key].add(session)

    def remove(self, session: Session) -> None:
        self.close_codes[session.close_code or 1000] += 1
        index, key = self._bucket(session)
        if session not in index.get(key, ()):
            return
        self._count -= 1
        places = [(index, key)]
        if isinstance(session.principal, AgentPrincipal):
            places.extend(self._agent_indexes(session.principal))
        for where, where_key in places:
            sessions = where[where_key]
            sessions.discard(session)
            if not sessions:
                del where[where_key]

    def candidates(
        self,
        tenant: str,
        visitor_id: str | None,
        *,
        every_agent: bool = True,
        agent_ids: Iterable[str] = (),
        overseers: bool = False,
    ) -> list[Session]:
        """Sockets that may see an event of ``tenant`` about ``visitor_id``'s conversation.

        ``every_agent`` False narrows the tenant's agents to those named in ``agent_ids``
        and, with ``overseers``, those allowed to see every conversation: the fan-out still
        judges each candidate (gateway/visibility.py); this only leaves out agents it would
        refuse.
        """
        if every_agent:
            found = list(self._agents.get(tenant, ()))
        else:
            chosen = set(self._overseers.get(tenant, ())) if overseers else set()
            for agent_id in agent_ids:
                chosen.update(self._by_agent.get((tenant, agent_id), ()))
            found = list(chosen)
        if visitor_id:
            found.extend(self._customers.get((tenant, visitor_id), ()))
        return found

    def of_tenant(self, tenant: str) -> tuple[Session, ...]:
        customers = (
            s for (t, _), sessions in self._customers.items() if t == tenant for s in sessions
        )
        return (*self._agents.get(tenant, ()), *customers)

    def agent_sessions(self, tenant: str, agent_id: str) -> list[Session]:
        return list(self._by_agent.get((tenant, agent_id), ()))

    def group_sessions(self, tenant: str, group_id: str) -> list[Session]:
        """Sockets of agents whose token names ``group_id`` among their groups."""
        return [
            s
            for s in self._agents.get(tenant, ())
            if isinstance(s.principal, AgentPrincipal) and group_id in s.principal.groups
        ]

    def all(self) -> list[Session]:
        return [
            s for sessions in (*self._agents.values(), *self._customers.values()) for s in sessions
        ]

    def __len__(self) -> int:
        return self._count
