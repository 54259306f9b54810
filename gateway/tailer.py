"""The gateway's one reader of the log: dedupe, resume buffer, fan-out to sockets.

Each gateway process tails the log once. For every event (deduped by id, so a publisher
retry that landed twice is delivered once) it updates the conversation directory, keeps
the event in a bounded ring buffer for reconnect-and-resume, and hands it to every
session of the tenant that may see it. ``attach`` replays the buffer and registers the
session with no await in between, so a resuming client gets no gap and no duplicate.

The buffer holds each event as the log's JSON in a tuple of plain values, not as an
``Envelope``: the garbage collector untracks such tuples, so a full buffer (50,000 events)
costs a full collection nothing. Holding envelopes it was ~7 tracked objects an event, and
every full collection walked 350,000 of them: 0.4–2 s with the whole gateway stopped,
seen as p99 growing round after round under load (docs/performance.md). A resume decodes
the buffered events of its tenant again, which is rare and proportionate to what it misses.

The tail starts ``START_BACK_S`` before the gateway's start (an ``x-stream-offset``
timestamp), so clients that were connected to a gateway that died can resume here.
"""

import asyncio
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import structlog

from contracts.audience import without
from contracts.envelope import Envelope, LoggedEvent
from gateway.directory import ConversationDirectory
from gateway.immediate_write import WriteBatch
from gateway.sessions import Session, SessionRegistry
from gateway.visibility import WHOLE, EventDelivery, delivery
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import marker_event
from relaydesk.bus.codec import decode_envelope
from relaydesk.dedupe import SeenIds

log = structlog.get_logger(__name__)

START_BACK_S = 15 * 60
SEEN_IDS = 200_000  # dedupe window: publisher retries land within seconds of each other


def event_body(logged: LoggedEvent) -> bytes:
    """The envelope's JSON as the log holds it (no second serialisation on the hot path); an
    event not read from the log is serialised here."""
    return logged.body if logged.body is not None else logged.envelope.model_dump_json().encode()


def event_frame(position: int, body: bytes) -> bytes:
    """The ``event`` frame of a log entry, built once and shared by every socket that sees it."""
    return b'{"t":"event","position":%d,"event":%b}' % (position, body)


def partial_frame(position: int, event: Envelope, withheld: frozenset[str]) -> bytes:
    """The ``event`` frame without the ``withheld`` fields of its data (a declared audience
    that gets less than the whole event, contracts/audience.py)."""
    partial = event.model_copy(update={"data": without(event.data, withheld)})
    return b'{"t":"event","position":%d,"event":%b}' % (
        position,
        partial.model_dump_json().encode(),
    )


class Tailer:
    def __init__(
        self,
        bus: Bus,
        directory: ConversationDirectory,
        sessions: SessionRegistry,
        *,
        buffer_size: int,
    ) -> None:
        self._bus = bus
        self.directory = directory
        self.sessions = sessions
        # (position, tenant, envelope JSON): plain values only, see the module docstring
        self._buffer: deque[tuple[int, str, bytes]] = deque(maxlen=buffer_size)
        self._seen = SeenIds(limit=SEEN_IDS)
        self._reader: LogReader | None = None
        self.first_position: int | None = None
        self.head = -1
        self.listeners: list = []  # callables(event) for in-process reactions (caches)
        # Callers waiting for the tail to reach a position: (position, woken when it has).
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._marker_id: str | None = None
        self._marker_seen: asyncio.Future[None] | None = None  # while the start waits for it
        # A chunk's frames, each socket's written at once when the chunk is fanned out.
        self._writes = WriteBatch()

    async def start(self, start_back_s: int = START_BACK_S) -> None:
        since = datetime.now(UTC) - timedelta(seconds=start_back_s)
        # Each event is fanned out as it arrives, in the task that reads the log (the
        # reader's ``handle``): no queue and no second task between the broker and sockets.
        self._reader = await LogReader(
            self._bus,
            start=since,  # type: ignore[arg-type]
            name="gateway-tail",
            handle=self._on_event,
            handled_chunk=self._writes.flush,
        ).open()
        # Serve only once everything published before our start is in the buffer, so a
        # resuming client can never fall into a gap between the tail's start and now.
        marker = marker_event("gateway")
        self._marker_id = marker.id  # before publishing: the tail may see it before publish returns
        self._marker_seen = asyncio.get_running_loop().create_future()
        try:
            await self._bus.publish(marker)
            await asyncio.wait_for(self._marker_seen, 60)
        finally:
            self._marker_seen = None  # started: no event is compared with the marker any more

    @property
    def reader(self) -> LogReader | None:
        return self._reader

    async def stop(self) -> None:
        if self._reader:
            await self._reader.close()

    def _on_event(self, logged: LoggedEvent) -> None:
        try:
            self._dispatch(logged)
        except Exception:  # one bad event must not stop fan-out for everyone
            log.exception(
                "tail_dispatch_failed", position=logged.position, event_type=logged.envelope.type
            )
        if self._waiting:
            self._wake()
        seen = self._marker_seen
        if seen is not None and logged.envelope.id == self._marker_id and not seen.done():
            seen.set_result(None)

    def _wake(self) -> None:
        """Wake the waiters whose position the tail has reached; forget those gone."""
        waiting = []
        for position, future in self._waiting:
            if future.done():
                continue
            if self.head >= position:
                future.set_result(None)
            else:
                waiting.append((position, future))
        self._waiting = waiting

    async def wait_for_position(self, position: int, timeout: float) -> bool:
        if self.head >= position:
            return True
        reached = asyncio.get_running_loop().create_future()
        self._waiting.append((position, reached))
        try:
            await asyncio.wait_for(reached, timeout)
        except TimeoutError:
            return False
        finally:
            if not reached.done():
                reached.cancel()  # dropped from the list at the next event
        return True

    def _missing_before_buffer(self, resume_from: int) -> bool:
        if self.first_position is None:
            return False  # nothing read yet: everything after resume_from is still to come
        if resume_from + 1 < self.first_position:
            return True
        evicted = len(self._buffer) == self._buffer.maxlen
        return evicted and resume_from + 1 < self._buffer[0][0]

    def _dispatch(self, logged: LoggedEvent) -> None:
        event, position = logged.envelope, logged.position
        self.head = position
        if self.first_position is None:
            self.first_position = position
        if not self._seen.first(event.id):
            return
        conversation = self.directory.apply(event)
        for listener in self.listeners:
            listener(event)
        body = event_body(logged)
        frame = event_frame(position, body)
        self._buffer.append((position, event.tenant, body))
        deliver = EventDelivery(event, conversation)  # the type's audience, looked up once
        if not deliver.anyone:
            return
        frames = {WHOLE: frame}  # one encoding per distinct part delivered
        for session in self.sessions.candidates(
            event.tenant,
            conversation.visitor_id if conversation else None,
            every_agent=deliver.every_agent,
            agent_ids=() if deliver.every_agent else deliver.agent_ids(),
            overseers=deliver.overseers,
        ):
            withheld = deliver.to(session.principal)
            if withheld is None:
                continue
            if withheld not in frames:
                frames[withheld] = partial_frame(position, event, withheld)
            session.send_event(position, frames[withheld], self._writes)

    def attach(self, session: Session, resume_from: int | None) -> bool:
        """Register ``session``; with ``resume_from`` first queue what it missed.

        Returns False when ``resume_from`` is older than the buffer (the client must resync).
        """
        if resume_from is not None:
            if self._missing_before_buffer(resume_from):
                return False
            session.last_position = resume_from
            session.replay(list(self._missed(session, resume_from)))
        else:
            session.last_position = self.head
        self.sessions.add(session)
        return True

    def _missed(self, session: Session, resume_from: int) -> Iterator[tuple[int, bytes]]:
        """The buffered frames after ``resume_from`` that ``session`` may see, as it may see
        them (judged by what the directory knows now)."""
        tenant = session.principal.tenant
        for position, event_tenant, body in self._buffer:
            if position <= resume_from or event_tenant != tenant:
                continue
            event = decode_envelope(body)
            conversation_id = event.data.get("conversation_id")
            conversation = (
                self.directory.get(event.tenant, conversation_id)
                if isinstance(conversation_id, str)
                else None
            )
            withheld = delivery(session.principal, event, conversation)
            if withheld is not None:
                yield (
                    position,
                    partial_frame(position, event, withheld)
                    if withheld
                    else event_frame(position, body),
                )
