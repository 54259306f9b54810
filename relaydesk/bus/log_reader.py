"""Reads the event log (a stream queue) from a position, in batches, over the stream protocol.

Guarantees: every event at or after ``start`` is yielded once per reader, in log order,
with its position; after a broker reconnect the reader re-attaches at the position after
the last one it yielded (never from its original start, never skipping). What the reader
cannot have is what the stream no longer holds: a reader behind by more than the stream's
retention (30 days) is handed the oldest entry left, and the positions in between are
reported (``log_entries_expired``, an error line and a counter) and kept in ``expired`` for
its owner (history records them in the archive, history_service/service.py). Bodies that are
not valid envelopes are dead-lettered with a reason and skipped, so one poison event
cannot stall a consumer. Readers store their own offset together with the state they
derive (the broker's offset tracking is not used: it could not be written atomically
with that state).

A reader has a subscription of its own (relaydesk/bus/log_subscription.py), or reads
through the one its process shares between its readers (relaydesk/bus/shared_log.py);
either way it hands out each position once, in order, from its own bounded inbox, or (with
``handle``) to a function called as each entry arrives.

Why the stream protocol and not AMQP 0-9-1 (which publishing still uses): over 0-9-1 the
broker converts every entry into three frames per consumer and each client decodes a
header table per message; the stream protocol hands out whole chunks. Measured here:
a reader costs about a third of the CPU per event, and so does the broker per reader
(docs/performance.md). Flow control is the protocol's credit: one chunk's credit is
returned when the previous chunk is queued, and the queue is bounded, so a slow reader
holds the broker back instead of buffering the whole log in memory.
"""

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

import structlog
from pydantic import ValidationError
from rstream import ConsumerOffsetSpecification, OffsetType

from contracts.envelope import Envelope, LoggedEvent
from relaydesk.bus.amqp10 import NotAMessage, message_parts
from relaydesk.bus.codec import decode_envelope
from relaydesk.bus.connection import Bus
from relaydesk.bus.log_subscription import Deliver, LogSubscription, ReaderClosed
from relaydesk.metrics import (
    LOG_ENTRIES_EXPIRED,
    LOG_READER_BUFFERED,
    LOG_READER_LAG_SECONDS,
    LOG_READER_POSITION,
)

if TYPE_CHECKING:
    from relaydesk.bus.shared_log import SharedLog

log = structlog.get_logger(__name__)

Start = int | datetime | Literal["first", "last", "next"]


class Decoded(NamedTuple):
    """An entry decoded once for every reader of a shared subscription (shared_log.py):
    the agent process's two readers decoded each entry each (decoding was 38 % of its py-spy
    samples under load; the process ~12 % cheaper per message since, docs/performance.md)."""

    body: bytes
    traceparent: str | None
    envelope: Envelope


def decoded(raw: bytes) -> Decoded | None:
    """``raw`` decoded; None when it is not an event (each reader then reports it as its own
    reader does: ``LogReader._decode``)."""
    try:
        body, traceparent = message_parts(raw)
        return Decoded(body, traceparent, decode_envelope(body))
    except (NotAMessage, ValueError, ValidationError):
        return None


# (reader generation, position, raw or decoded entry, chunk timestamp in ms)
Entry = tuple[int, int, bytes | Decoded, int]


class _Source(Protocol):
    @property
    def subscribed(self) -> bool: ...


def offset_of(start: Start) -> ConsumerOffsetSpecification:
    """The stream protocol's offset specification for a reader's start."""
    if isinstance(start, datetime):
        return ConsumerOffsetSpecification(OffsetType.TIMESTAMP, int(start.timestamp() * 1000))
    if isinstance(start, int):
        return ConsumerOffsetSpecification(OffsetType.OFFSET, start)
    return ConsumerOffsetSpecification(
        {"first": OffsetType.FIRST, "last": OffsetType.LAST, "next": OffsetType.NEXT}[start], None
    )


class _Inbox(asyncio.Queue[Entry]):
    """The bounded queue of entries received ahead of the caller, oldest first.

    Subclassed through asyncio.Queue's documented hooks (``_init``/``_put``/``_get``, as
    LifoQueue does) so that the oldest waiting entry's append time can be read for the
    reader's lag without taking it out.
    """

    _queue: deque[Entry]  # asyncio.Queue's own storage (its size, empty and full read it)

    def _init(self, maxsize: int) -> None:
        self._queue = deque()

    def _put(self, item: Entry) -> None:
        self._queue.append(item)

    def _get(self) -> Entry:
        return self._queue.popleft()

    def oldest_timestamp(self) -> int | None:
        return self._queue[0][3] if self._queue else None


class LogReader:
    """One consumer of the log.

    Args:
        bus: a connected :class:`Bus` (its stream endpoint is used; dead letters go through it).
        start: a position (resume *at* it), a moment, or ``"first"`` / ``"last"`` / ``"next"``.
        prefetch: entries buffered ahead of the caller.
        name: for logs, the connection name, the dead-letter source header and the
            ``reader`` label of its metrics.
        measured: export the reader's position and lag (relaydesk/metrics.py); off for
            readers whose names are not a fixed few (one per webhook subscription).
        shared: read through the process's one subscription to the log
            (relaydesk/bus/shared_log.py) instead of a subscription of its own.
        handle: called with each event as it arrives, instead of queueing it for
            ``batches()``: for a reader whose work per event is short and never waits (the
            gateway's fan-out). Queued, an event waited for the reading task's next turn
            of the event loop, milliseconds on a busy gateway (docs/performance.md,
            "Hand-offs in the gateway"). It must not raise.
        handled_chunk: with ``handle``, called once the events of a chunk of the log were
            handed over (the gateway writes each socket's frames of the chunk at once).
        gulp_s: once up to date, read the log in gulps this far apart (log_subscription.py):
            for a reader off the chat's path, whose wake-ups per chunk cost more than its
            work. Not for a shared subscription (its readers decide for themselves).
    """

    def __init__(
        self,
        bus: Bus,
        *,
        start: Start = "first",
        prefetch: int = 2000,
        name: str = "reader",
        measured: bool = True,
        shared: "SharedLog | None" = None,
        handle: Callable[[LoggedEvent], None] | None = None,
        handled_chunk: Callable[[], None] | None = None,
        gulp_s: float = 0.0,
    ) -> None:
        self._bus = bus
        self._gulp_s = gulp_s
        self._handle = handle
        self._handled_chunk = handled_chunk if handle is not None else None
        self.start = start
        self.name = name
        # Its metric series, looked up once: prometheus_client's labels() takes a lock and
        # builds a key each call, which per batch cost more than the reader's own work.
        labels = (bus.service, name)
        self._gauges = (
            (
                LOG_READER_POSITION.labels(*labels),
                LOG_READER_LAG_SECONDS.labels(*labels),
                LOG_READER_BUFFERED.labels(*labels),
            )
            if measured
            else None
        )
        self._shared = shared
        # Entries carry the generation of the reader they were offered to: after a lost
        # connection of its own subscription the inbox is emptied and the generation moves
        # on, so an entry the old subscription still had in hand is not taken for a new one.
        self._inbox = _Inbox(maxsize=prefetch)
        # When the oldest entry of the batch the caller is working on was appended (ms);
        # None between batches. With the inbox's oldest it gives the reader's lag.
        self._working_since: int | None = None
        self._generation = 0
        # Where entries come from now: a subscription of its own, or the shared one.
        self.source: _Source | None = None
        # Its own subscription (not shared) from the moment its open starts.
        self._own: LogSubscription | None = None
        self._closed = False
        self.last_position: int | None = None
        # Entries at or below this are not handed out: the last one handed out, or the one
        # before a numeric start (a shared subscription may still be behind it).
        self._after = start - 1 if isinstance(start, int) else -1
        # Whether the next entry must be ``_after + 1``: from a numeric start, and once one
        # entry was handed out (a start at "first" or a time takes whatever comes first).
        self._contiguous = isinstance(start, int)
        self.expired: list[tuple[int, int]] = []  # (first, last) positions gone from the log
        self.poison_count = 0

    @property
    def bus(self) -> Bus:
        return self._bus

    async def open(self) -> "LogReader":
        """Subscribe (or join the shared subscription); returns the reader.

        A reader closed before its open returns (``close()`` from another task, or the bus's
        ``close()``) ends the open with :class:`ReaderClosed`, its connection closed and
        nothing left on the bus; a reader already closed is not opened again. Cancelled, the
        open ends with ``CancelledError``, its connection closed too.
        """
        if self._closed:
            raise ReaderClosed(f"log reader {self.name} is closed")
        # On the bus from the start: closing the bus closes an opening reader too.
        self._bus.reader_opened(self)
        try:
            await self._subscribe()
        except BaseException:
            self._bus.reader_closed(self)
            raise
        if self._closed:  # a shared subscription others still use finished opening meanwhile
            raise ReaderClosed(f"log reader {self.name} was closed while it opened")
        return self

    async def _subscribe(self) -> None:
        if self._shared is not None:
            await self._shared.attach(self)
            return
        subscription = self._own = self.own_subscription()
        await subscription.open()
        self.source = subscription

    def own_subscription(self, deliver: Deliver | None = None) -> LogSubscription:
        """A subscription from this reader's start (or after its last position handed out)."""
        return LogSubscription(
            self._bus.stream_endpoint,
            connection_name=f"relaydesk-{self._bus.service}-{self.name}",
            name=self.name,
            offset=self.resume_offset,
            deliver=deliver or self.offer,
            on_lost=self._lost,
            gulp_s=self._gulp_s,
            chunk_done=self._handled_chunk,
        )

    def resume_offset(self) -> ConsumerOffsetSpecification:
        if self.last_position is not None:
            return ConsumerOffsetSpecification(OffsetType.OFFSET, self.last_position + 1)
        return offset_of(self.start)

    async def offer(self, position: int, raw: bytes | Decoded, timestamp: int) -> None:
        """Queue an entry for the caller; waits while the inbox is full (backpressure). With
        ``handle``, decode it and hand it over now."""
        if self._closed:
            return
        if self._handle is None:
            await self._inbox.put((self._generation, position, raw, timestamp))
            return
        event = await self._decode((self._generation, position, raw, timestamp))
        if event is not None:
            self._handle(event)
            self._measure(event)

    def _lost(self) -> None:
        """Our own subscription lost its connection: it resumes after the last handed out."""
        self._generation += 1
        while not self._inbox.empty():
            self._inbox.get_nowait()

    @property
    def subscribed(self) -> bool:
        """Attached to the log now (False while it resubscribes after a connection loss)."""
        return self.source is not None and self.source.subscribed and not self._closed

    @property
    def buffered(self) -> int:
        """Entries received and waiting for the caller."""
        return self._inbox.qsize()

    def lag_s(self) -> float:
        """How long ago the oldest entry this reader holds unfinished was appended to the log.

        Unfinished: received and waiting in the inbox, or in the batch the caller is
        working on. 0 when it holds nothing: a reader with nothing to do is not behind.
        A reader catching up (after a restart, or stuck on its store) holds old entries, so
        its lag is how far behind "now" it is. Time, not a count of entries: RabbitMQ 3.10
        has no cheap "last offset" of a stream to subtract from (docs/architecture.md).
        """
        held = [t for t in (self._working_since, self._inbox.oldest_timestamp()) if t is not None]
        if not held:
            return 0.0
        return max(0.0, time.time() - min(held) / 1000)

    async def close(self) -> None:
        """Stop delivering at once; the connection finishes closing with the bus. An
        ``open()`` under way in another task ends with :class:`ReaderClosed`."""
        if self._closed:
            return
        self._closed = True
        self._bus.reader_closed(self)
        self._generation += 1
        if self._shared is not None:
            self._shared.detach(self)
        elif self._own is not None:  # opened, or still opening: its close ends the open
            closing = self._own.close()
            if closing is not None:
                self._bus.close_later(closing)
        # A shared subscription waiting for room in this inbox goes on to the other readers.
        while not self._inbox.empty():
            self._inbox.get_nowait()

    async def __aenter__(self) -> "LogReader":
        return await self.open()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def batches(
        self,
        max_batch: int = 500,
        idle_timeout: float | None = None,
        linger_s: float = 0.0,
        busy_per_s: int = 50,
    ) -> AsyncIterator[list[LoggedEvent]]:
        """Yield lists of events in log order.

        ``idle_timeout`` ends iteration when no event arrives for that many seconds
        (replay uses it to find the end of the log). ``linger_s`` lets a batch fill for
        up to that long after its first event, but only while the log is busy (at least
        ``busy_per_s`` events in the current or the previous second): a reader whose cost
        is per batch (a database round trip) then makes fewer, larger writes under load,
        and adds no delay when the log is quiet (a console reading right after an event
        must find it).
        """
        inbox = self._inbox
        loop = asyncio.get_running_loop()
        busy, window_start, window_count = False, loop.time(), 0
        while True:
            self._working_since = None  # the caller is back for more: its batch is done
            if idle_timeout is None:
                first = await inbox.get()
            else:
                try:
                    async with asyncio.timeout(idle_timeout):
                        first = await inbox.get()
                except TimeoutError:
                    return
            raw = [first]
            until = loop.time() + (linger_s if busy else 0.0)
            while len(raw) < max_batch:
                if not inbox.empty():
                    raw.append(inbox.get_nowait())
                    continue
                wait = until - loop.time()
                if wait <= 0:
                    break
                try:
                    async with asyncio.timeout(wait):
                        raw.append(await inbox.get())
                except TimeoutError:
                    break
            now, window_count = loop.time(), window_count + len(raw)
            if now - window_start >= 1.0:
                busy, window_start, window_count = window_count >= busy_per_s, now, 0
            elif window_count >= busy_per_s:
                busy = True
            batch = [event for entry in raw if (event := await self._decode(entry)) is not None]
            if batch:
                self._working_since = raw[0][3]
                self._measure(batch[-1])
                yield batch

    def _measure(self, last: LoggedEvent) -> None:
        if self._gauges is None:
            return
        position, lag, buffered = self._gauges
        position.set(last.position)
        if self._handle is None:  # handed over on arrival, a reader holds nothing: both stay 0
            lag.set(self.lag_s())  # one definition of lag, the one /readyz judges by
            buffered.set(self.buffered)

    async def events(self, idle_timeout: float | None = None) -> AsyncIterator[LoggedEvent]:
        async for batch in self.batches(idle_timeout=idle_timeout):
            for event in batch:
                yield event

    async def _decode(self, entry: Entry) -> LoggedEvent | None:
        generation, position, raw, _ = entry
        if generation != self._generation:
            return None  # delivered by a subscription that has since been replaced
        if position <= self._after:
            return None  # already handed out (re-delivered, or read by two subscriptions)
        if self._contiguous and position > self._after + 1:
            self._expire(self._after + 1, position - 1)
        self._contiguous = True
        self._after = self.last_position = position
        if isinstance(raw, Decoded):  # decoded once for every reader (shared_log.py)
            return LoggedEvent(
                position=position, envelope=raw.envelope, body=raw.body, traceparent=raw.traceparent
            )
        try:
            body, traceparent = message_parts(raw)
        except NotAMessage as exc:
            await self._poison(raw, position, str(exc))
            return None
        try:
            return LoggedEvent(
                position=position,
                envelope=decode_envelope(body),
                body=body,
                traceparent=traceparent,
            )
        except (ValueError, ValidationError) as exc:
            await self._poison(body, position, str(exc))
            return None

    def _expire(self, first: int, last: int) -> None:
        """Stream offsets are consecutive: a jump is entries the broker no longer held (its
        retention deleted their segments before this reader came to them)."""
        self.expired.append((first, last))
        count = last - first + 1
        LOG_ENTRIES_EXPIRED.labels(self._bus.service, self.name).inc(count)
        log.error(
            "log_entries_expired",
            reader=self.name,
            first_position=first,
            last_position=last,
            count=count,
        )

    def take_expired(self) -> list[tuple[int, int]]:
        """The ranges found gone since the last call (each reported once)."""
        taken, self.expired = self.expired, []
        return taken

    async def _poison(self, body: bytes, position: int, reason: str) -> None:
        self.poison_count += 1
        await self._bus.dead_letter(
            body,
            reason=f"undecodable log entry at {position}: {reason}"[:500],
            source=self.name,
            headers={"position": position},
        )
        return None
