"""Reads the event log (a stream queue) from a position, in batches, over the stream protocol.

Guarantees: every event at or after ``start`` is yielded once per reader, in log order,
with its position; after a broker reconnect the reader re-attaches at the position after
the last one it yielded (never from its original start, never skipping). Bodies that are
not valid envelopes are dead-lettered with a reason and skipped, so one poison event
cannot stall a consumer. Readers store their own offset together with the state they
derive (the broker's offset tracking is not used: it could not be written atomically
with that state).

Why the stream protocol and not AMQP 0-9-1 (which publishing still uses): over 0-9-1 the
broker converts every entry into three frames per consumer and each client decodes a
header table per message; the stream protocol hands out whole chunks. Measured here:
a reader costs about a third of the CPU per event, and so does the broker per reader
(docs/performance.md). Flow control is the protocol's credit: one chunk's credit is
returned when the previous chunk is queued, and the queue is bounded, so a slow reader
holds the broker back instead of buffering the whole log in memory.
"""

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Literal

import structlog
from pydantic import ValidationError
from rstream import Consumer, ConsumerOffsetSpecification, MessageContext, OffsetType

from contracts import topology as names
from contracts.envelope import LoggedEvent
from relaydesk.bus.amqp10 import NotAMessage, message_parts
from relaydesk.bus.codec import decode_envelope
from relaydesk.bus.connection import Bus
from relaydesk.bus.endpoint import close_quietly
from relaydesk.metrics import LOG_READER_BUFFERED, LOG_READER_LAG_SECONDS, LOG_READER_POSITION

log = structlog.get_logger(__name__)

Start = int | datetime | Literal["first", "last", "next"]
INITIAL_CREDIT = 8  # chunks in flight towards this reader
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 3.0
CLOSE_TIMEOUT_S = 3.0

# (subscription generation, position, raw entry, chunk timestamp in ms)
Entry = tuple[int, int, bytes, int]


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
    """

    def __init__(
        self,
        bus: Bus,
        *,
        start: Start = "first",
        prefetch: int = 2000,
        name: str = "reader",
        measured: bool = True,
    ) -> None:
        self._bus = bus
        self._start = start
        self._name = name
        self._measured = measured
        # Entries carry the subscription generation they came from: after a reconnect, an
        # entry the old subscription still had in hand must not be taken for a new one.
        self._inbox = _Inbox(maxsize=prefetch)
        # When the oldest entry of the batch the caller is working on was appended (ms);
        # None between batches. With the inbox's oldest it gives the reader's lag.
        self._working_since: int | None = None
        self._generation = 0
        self._subscriptions = 0  # attempts so far, successful or not: picks the node
        self._consumer: Consumer | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        self.last_position: int | None = None
        self.poison_count = 0

    async def open(self) -> "LogReader":
        await self._subscribe()
        self._bus.reader_opened(self)
        return self

    def _offset(self) -> ConsumerOffsetSpecification:
        if self.last_position is not None:
            return ConsumerOffsetSpecification(OffsetType.OFFSET, self.last_position + 1)
        start = self._start
        if isinstance(start, datetime):
            return ConsumerOffsetSpecification(OffsetType.TIMESTAMP, int(start.timestamp() * 1000))
        if isinstance(start, int):
            return ConsumerOffsetSpecification(OffsetType.OFFSET, start)
        return ConsumerOffsetSpecification(
            {"first": OffsetType.FIRST, "last": OffsetType.LAST, "next": OffsetType.NEXT}[start],
            None,
        )

    async def _subscribe(self) -> None:
        endpoint = self._bus.stream_endpoint
        self._generation += 1
        generation = self._generation
        # Each new subscription asks the next node: the one this reader last used may be
        # the one that went down.
        host, port = endpoint.address(self._subscriptions)
        self._subscriptions += 1
        consumer = Consumer(
            host,
            port,
            **endpoint.client_options(
                f"relaydesk-{self._bus.service}-{self._name}", self._on_connection_closed
            ),
        )

        async def deliver(raw: bytes, context: MessageContext) -> None:
            if generation == self._generation:
                await self._inbox.put((generation, context.offset, raw, context.timestamp))

        try:
            await consumer.start()
            await consumer.subscribe(
                names.LOG_STREAM,
                deliver,
                offset_specification=self._offset(),
                initial_credit=INITIAL_CREDIT,
            )
        except BaseException:
            await close_quietly(consumer, CLOSE_TIMEOUT_S)
            raise
        self._consumer = consumer

    async def _on_connection_closed(self, info: object) -> None:
        if self._closed or (self._reconnecting is not None and not self._reconnecting.done()):
            return
        log.info(
            "log_reader_connection_lost",
            reader=self._name,
            after=self.last_position,
            reason=str(getattr(info, "reason", ""))[:100],
        )
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        old, self._consumer = self._consumer, None
        self._generation += 1  # whatever the old subscription still delivers is dropped
        while not self._inbox.empty():
            self._inbox.get_nowait()
        if old is not None:
            await close_quietly(old, CLOSE_TIMEOUT_S)
        delay = RECONNECT_MIN_S
        while not self._closed:
            try:
                await self._subscribe()
                log.info("log_reader_resubscribed", reader=self._name, after=self.last_position)
                return
            except Exception as exc:  # noqa: BLE001 - broker still down: keep trying, the log waits
                log.warning(
                    "log_reader_resubscribe_failed", reader=self._name, error=type(exc).__name__
                )
                await asyncio.sleep(
                    random.uniform(0, delay)
                )  # full jitter: readers do not reconnect in lockstep
                delay = min(RECONNECT_MAX_S, delay * 2)

    @property
    def subscribed(self) -> bool:
        """Attached to the log now (False while it resubscribes after a connection loss)."""
        return self._consumer is not None and not self._closed

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
        """Stop delivering at once; the connection finishes closing with the bus."""
        self._closed = True
        self._bus.reader_closed(self)
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            self._generation += 1
            self._bus.close_later(close_quietly(consumer, CLOSE_TIMEOUT_S))

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
        if not self._measured:
            return
        labels = (self._bus.service, self._name)
        LOG_READER_POSITION.labels(*labels).set(last.position)
        # one definition of lag, the one /readyz judges by (lag_s)
        LOG_READER_LAG_SECONDS.labels(*labels).set(self.lag_s())
        LOG_READER_BUFFERED.labels(*labels).set(self._inbox.qsize())

    async def events(self, idle_timeout: float | None = None) -> AsyncIterator[LoggedEvent]:
        async for batch in self.batches(idle_timeout=idle_timeout):
            for event in batch:
                yield event

    async def _decode(self, entry: Entry) -> LoggedEvent | None:
        generation, position, raw, _ = entry
        if generation != self._generation:
            return None  # delivered by a subscription that has since been replaced
        if self.last_position is not None and position <= self.last_position:
            return None  # re-delivered after a reconnect: already handed out
        self.last_position = position
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

    async def _poison(self, body: bytes, position: int, reason: str) -> None:
        self.poison_count += 1
        await self._bus.dead_letter(
            body,
            reason=f"undecodable log entry at {position}: {reason}"[:500],
            source=self._name,
            headers={"position": position},
        )
        return None
