"""One subscription to the log over the stream protocol, attached again after a connection loss.

What both a process's own reader (``LogReader``) and the reader a process shares
(``SharedLog``) need from the broker: entries handed to ``deliver`` in log order, one call
at a time; after a connection loss (socket closed, heartbeat missed, stream metadata
change) a new subscription from ``offset()`` (asked again at that moment, so the owner says
where it is), on the next node, with jittered backoff until the broker is back. Whatever
the old subscription still delivers after the loss is dropped before it reaches
``deliver`` (each rstream subscription is tagged with a generation); an entry that was
already inside ``deliver`` when the loss was noticed is the owner's to judge (``on_lost``
is called first).

Flow control is the protocol's credit: credit is returned as a chunk's entries start
going to ``deliver``, and ``deliver`` awaits room downstream, so a slow owner holds the
broker back instead of buffering the log in memory. rstream returns one chunk's credit per
chunk, a frame each way for every chunk and reader, and under chat load a chunk holds one to
a few entries; ``CreditInBatches`` returns it ``CREDIT_BATCH`` chunks at a time, so the
broker still has at least ``INITIAL_CREDIT - CREDIT_BATCH`` chunks of credit at any moment.

A reader off the chat's path (history, billing, connectors: nobody waits on it within a
tenth of a second) may read in gulps (``gulp_s``): once it is up to date (the chunk it was
handed is younger than ``CAUGHT_UP_MS``), it stops reading its socket for ``gulp_s`` and
then takes what came meanwhile in one read, several chunks per wake-up of its event loop
instead of one. Most of such a reader's CPU under chat load was the loop's own work per
chunk (the wake-up, the socket read, two task hand-offs; docs/performance.md, "Readers in
gulps"). Behind (catching up), it reads as fast as the broker sends; its credit is larger
(``GULP_CREDIT``) so that a gulp's worth of chunks is never held back by credit.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from rstream import Consumer, ConsumerOffsetSpecification, MessageContext, schema
from rstream.exceptions import LeaderNotAvailable, StreamNotAvailable

from contracts import topology as names
from relaydesk.bus.endpoint import StreamEndpoint, close_quietly, open_with_retry
from relaydesk.cancellation import cancel_requested, raise_if_cancel_requested

log = structlog.get_logger(__name__)

INITIAL_CREDIT = 12  # chunks in flight towards this subscription
CREDIT_BATCH = 4  # chunks whose credit is returned in one frame (8+ stay in flight)
GULP_CREDIT = 64  # in flight towards a reader in gulps: ~0.3 s of chunks at 2,000 msg/s
CAUGHT_UP_MS = 1000  # a chunk younger than this: the reader is up to date, it may pause
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 3.0
CLOSE_TIMEOUT_S = 3.0
# A stream declared a moment ago answers "not available" (or its metadata names no leader
# yet, which rstream raises as LeaderNotAvailable) until its leader runs: waited out at
# open, this long at most.
NOT_AVAILABLE_WAIT_S = 15.0

# position, the raw AMQP 1.0 message, the chunk's broker timestamp (ms)
Deliver = Callable[[int, bytes, int], Awaitable[None]]


class ReaderClosed(RuntimeError):
    """The reader (or its subscription) was closed while it opened."""


class CreditInBatches(Consumer):
    """rstream's ``Consumer`` with its per-chunk delivery (``_on_deliver``, rstream 1.1)
    returning credit ``CREDIT_BATCH`` chunks at a time instead of one; entries go to the
    callback exactly as rstream hands them (``_filter_messages``, ``MessageContext``).
    ``tests/foundation/test_log_credit.py`` counts the frames."""

    def __init__(
        self,
        *args: Any,
        gulp_s: float = 0.0,
        chunk_done: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._owed: dict[int, int] = {}  # subscription id -> chunks received, credit not returned
        self._gulp_s = gulp_s
        self._chunk_done = chunk_done
        self._paused: Any = None  # the transport not being read from until the gulp is due

    async def _on_deliver(self, frame: schema.Deliver, subscriber: Any, filter_value: Any) -> None:
        if frame.subscription_id != subscriber.subscription_id:
            return
        owed = self._owed.get(frame.subscription_id, 0) + 1
        if owed >= CREDIT_BATCH:
            await subscriber.client.credit(subscriber.subscription_id, owed)
            owed = 0
        self._owed[frame.subscription_id] = owed
        try:
            for offset, message in self._filter_messages(frame, subscriber, filter_value):
                context = MessageContext(
                    self,
                    subscriber.stream,
                    subscriber.subscription_id,
                    subscriber.reference,
                    offset,
                    frame.timestamp,
                )
                delivered = subscriber.callback(subscriber.decoder(message), context)
                if delivered is not None:
                    await delivered
        finally:  # also when the chunk's delivery ends early: what it gathered goes out
            if self._chunk_done is not None:
                self._chunk_done()
        if self._gulp_s and time.time() * 1000 - frame.timestamp < CAUGHT_UP_MS:
            self._pause_reading(subscriber.client)

    def _pause_reading(self, client: Any) -> None:
        """Leave the socket unread for ``gulp_s`` (what is already buffered is still handled):
        the chunks of that time then come in one read."""
        connection = getattr(client, "_conn", None)
        writer = getattr(connection, "_writer", None)
        transport = getattr(writer, "transport", None)
        if self._paused is not None or transport is None or transport.is_closing():
            return
        transport.pause_reading()
        self._paused = transport
        asyncio.get_running_loop().call_later(self._gulp_s, self._resume_reading)

    def _resume_reading(self) -> None:
        transport, self._paused = self._paused, None
        if transport is not None and not transport.is_closing():
            transport.resume_reading()


class LogSubscription:
    """Args:
    endpoint: where the broker's stream protocol listens.
    connection_name: shows in the broker's management UI.
    name: for logs.
    offset: where to (re)subscribe, asked at every subscription.
    deliver: receives each entry; awaiting it holds the broker back.
    on_lost: called when the connection is lost, before anything is resubscribed.
    gulp_s: read in gulps this far apart once up to date (off the chat's path only).
    chunk_done: called once the entries of a chunk were delivered.
    """

    def __init__(
        self,
        endpoint: StreamEndpoint,
        *,
        connection_name: str,
        name: str,
        offset: Callable[[], ConsumerOffsetSpecification],
        deliver: Deliver,
        on_lost: Callable[[], None] = lambda: None,
        gulp_s: float = 0.0,
        chunk_done: Callable[[], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._gulp_s = gulp_s
        self._chunk_done = chunk_done
        self._connection_name = connection_name
        self._name = name
        self._offset = offset
        self._deliver = deliver
        self._on_lost = on_lost
        self._generation = 0
        self._attempts = 0  # subscriptions so far, successful or not: picks the node
        self._consumer: Consumer | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._opening: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def subscribed(self) -> bool:
        """Attached to the log now (False while it resubscribes after a connection loss)."""
        return self._consumer is not None and not self._closed

    async def open(self) -> None:
        """Subscribe. A stream that exists but whose leader has not started yet (just declared,
        on a busy broker: seen at a service's start), or a broker slow to accept the connection
        (rstream gives up after 3 s: seen in CI on the busy machine), is asked again with
        backoff for up to ``NOT_AVAILABLE_WAIT_S``, as the publisher does at its start; a
        refused connection (nothing listens) and any other refusal are raised at once.

        ``close()`` from another task ends an open in flight: it raises :class:`ReaderClosed`
        once what it had opened is closed, as it does when called after ``close()``. A cancel
        of the caller ends it with ``CancelledError``, also after closing what it opened.
        """
        if self._closed:
            raise self._closed_error()
        # The subscribe runs in a task of its own so that close() can cancel it: the caller's
        # task is not close()'s to cancel (the caller was not asked to stop, only its reader).
        opening = self._opening = asyncio.get_running_loop().create_task(self._open_with_retry())
        try:
            await opening
            # A cancel the opening task swallowed (3.11's wait_for) is still the caller's.
            raise_if_cancel_requested()
        except asyncio.CancelledError:
            if self._closed and not cancel_requested():
                raise self._closed_error() from None
            await self._abandon()
            raise
        if self._closed:  # subscribed, but closed before this task was back: close() took it
            raise self._closed_error()

    def _closed_error(self) -> ReaderClosed:
        return ReaderClosed(f"log reader {self._name} was closed (before its open returned)")

    async def _open_with_retry(self) -> None:
        await open_with_retry(
            self._subscribe,
            retryable=(StreamNotAvailable, LeaderNotAvailable, TimeoutError, ConnectionError),
            within_s=NOT_AVAILABLE_WAIT_S,
            first_delay_s=RECONNECT_MIN_S,
            max_delay_s=RECONNECT_MAX_S,
            on_retry=lambda exc: log.info(
                "log_reader_stream_not_available", reader=self._name, error=type(exc).__name__
            ),
            give_up=lambda: self._closed,
        )

    async def _abandon(self) -> None:
        """The caller of ``open()`` was cancelled: close whatever the open got to."""
        closing = self.close()
        if closing is not None:
            await closing

    def close(self) -> Coroutine[Any, Any, None] | None:
        """Stop delivering at once; returns the connection's closing for the owner to await.

        An open or a resubscription under way is cancelled; the closing returned also waits
        for it to close what it had opened."""
        self._closed = True
        self._generation += 1
        stopping = [
            t for t in (self._opening, self._reconnecting) if t is not None and not t.done()
        ]
        for task in stopping:
            task.cancel()
        consumer, self._consumer = self._consumer, None
        if consumer is None and not stopping:
            return None
        return _finish_closing(consumer, stopping)

    async def _subscribe(self) -> None:
        self._generation += 1
        generation = self._generation
        # Each new subscription asks the next node: the one last used may be the one down.
        host, port = self._endpoint.address(self._attempts)
        self._attempts += 1
        consumer = CreditInBatches(
            host,
            port,
            gulp_s=self._gulp_s,
            chunk_done=self._chunk_done,
            **self._endpoint.client_options(self._connection_name, self._on_connection_closed),
        )
        deliver = self._deliver

        async def on_entry(raw: bytes, context: MessageContext) -> None:
            if generation == self._generation:
                await deliver(context.offset, raw, context.timestamp)

        try:
            await consumer.start()
            await consumer.subscribe(
                names.LOG_STREAM,
                on_entry,
                offset_specification=self._offset(),
                initial_credit=GULP_CREDIT if self._gulp_s else INITIAL_CREDIT,
            )
            # Each step of the subscribe is an rstream request awaited through 3.11's wait_for,
            # which loses a cancel that comes in the same turn as the answer
            # (relaydesk/cancellation.py): a webhook worker stopped while it subscribed then
            # went on reading, and the admin service's stop waited for it for ever.
            raise_if_cancel_requested()
        except BaseException:
            await close_quietly(consumer, CLOSE_TIMEOUT_S)
            raise
        if self._closed:  # closed while subscribing
            await close_quietly(consumer, CLOSE_TIMEOUT_S)
            return
        self._consumer = consumer

    async def _on_connection_closed(self, info: object) -> None:
        if self._closed or (self._reconnecting is not None and not self._reconnecting.done()):
            return
        log.info(
            "log_reader_connection_lost",
            reader=self._name,
            reason=str(getattr(info, "reason", ""))[:100],
        )
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        old, self._consumer = self._consumer, None
        self._generation += 1  # whatever the old subscription still delivers is dropped
        self._on_lost()
        if old is not None:
            await close_quietly(old, CLOSE_TIMEOUT_S)
        delay = RECONNECT_MIN_S
        while not self._closed:
            try:
                await self._subscribe()
                log.info("log_reader_resubscribed", reader=self._name)
                return
            except Exception as exc:  # noqa: BLE001 - broker still down: keep trying, the log waits
                log.warning(
                    "log_reader_resubscribe_failed", reader=self._name, error=type(exc).__name__
                )
                # full jitter: readers do not reconnect in lockstep
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(RECONNECT_MAX_S, delay * 2)


async def _finish_closing(consumer: Consumer | None, stopping: list[asyncio.Task[None]]) -> None:
    """Close the subscription's consumer, and wait for the tasks ``close()`` cancelled: each
    closes what it had opened itself (``_subscribe``) before it ends."""
    if consumer is not None:
        await close_quietly(consumer, CLOSE_TIMEOUT_S)
    if stopping:
        await asyncio.wait(stopping)
