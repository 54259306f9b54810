"""Appends events to the log over the stream protocol, with publisher confirms.

Why not AMQP 0-9-1 through the topic exchange: every entry then passes a channel
process, exchange routing and a 0-9-1 → 1.0 conversion in the broker, and three frames
plus a drain in the client. Publishing straight to the stream measured about half the
broker's CPU per event here and a third less of ours (docs/performance.md).

Batching: the first event goes out at once; whatever arrives while a batch is on its way
to its confirm is sent as the next batch, one frame. At low load nothing waits; from a few
hundred entries a second ``BatchPacing`` spaces batches ``interval_s`` apart instead, so they
hold ~10 entries instead of ~2 (every batch is a chunk, and a chunk costs the broker and
each of the log's readers about as much as the entries in it), and then a batch no longer
waits for the previous one's confirm (a few may be unconfirmed at once:
relaydesk/bus/publish_pacing.py).

Guarantee: ``publish`` resolves each body as confirmed (durable in the stream), refused
(the broker said no: the caller must not retry) or failed (connection trouble: the
caller retries with the same event id; readers dedupe by id).
"""

import asyncio
import functools
import itertools
import random

import structlog
from rstream import Producer
from rstream.producer import ConfirmationStatus
from rstream.utils import RawMessage

from relaydesk.bus.amqp10 import encode_message
from relaydesk.bus.deadline_sweep import DeadlineSweep
from relaydesk.bus.endpoint import StreamEndpoint, close_quietly, open_with_retry
from relaydesk.bus.publish_pacing import BatchPacing

log = structlog.get_logger(__name__)

MAX_BATCH = 500
CONNECT_TIMEOUT_S = 5.0
# How long ``start`` keeps trying a broker that does not answer in time (the AMQP connection
# is given 10 s too): rstream gives up on a TCP connect after 3 s, which a busy machine's
# broker (its acceptor behind a vhost's deletion, say) or a starved client can take.
START_DEADLINE_S = 10.0
CLOSE_TIMEOUT_S = 2.0
CONFIRM_TIMEOUT_S = 5.0  # a batch still unconfirmed after this is failed and the connection renewed
RECONNECT_MAX_S = 2.0
LOST = -1  # our "response code" for a confirm that cannot come any more

# One log entry to append: the envelope's JSON, the event id, the W3C traceparent (tracing on).
Entry = tuple[bytes, str, str | None]


class PublishRefused(Exception):
    """The broker refused the entry (the stream is missing, access denied, ...)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"stream refused the entry (response code {code})")
        self.code = code


class StreamPublisher:
    """One producer connection per process; ``publish`` may be called from any task.

    Args:
        endpoint: where the broker's stream protocol listens.
        stream: the stream to append to.
        name: the connection name (shows in the broker's management UI).
        pacing: when batches leave (default: ``BatchPacing()``'s defaults).
    """

    def __init__(
        self,
        endpoint: StreamEndpoint,
        stream: str,
        *,
        name: str,
        pacing: BatchPacing | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._pacing = pacing or BatchPacing()
        self._stream = stream
        self._name = name
        self._producer: Producer | None = None
        self._queue: list[tuple[Entry, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._ids = itertools.count(1)
        self._flusher: asyncio.Task[None] | None = None
        self._confirm_waits: set[asyncio.Task[None]] = set()  # one per unconfirmed batch
        self._batch_confirmed = asyncio.Event()
        self._closed = False
        self._connects = 0
        self._closing: set[asyncio.Task[None]] = set()  # connections lost, being closed
        self._deadlines = DeadlineSweep()

    async def start(self) -> None:
        """Connect now: a missing stream plugin is reported at start, not at the first message.

        A refused connection (nothing listens: the plugin is off) is reported at once; one
        that timed out is tried again until ``START_DEADLINE_S``.
        """
        await open_with_retry(
            self._connect,
            retryable=(TimeoutError, ConnectionError),
            within_s=START_DEADLINE_S,
            first_delay_s=0.1,
            max_delay_s=RECONNECT_MAX_S,
            on_retry=lambda exc: log.info(
                "stream_publisher_connect_retry", error=type(exc).__name__
            ),
        )
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def close(self) -> None:
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        for wait in self._confirm_waits:
            wait.cancel()
        await asyncio.gather(*self._confirm_waits, return_exceptions=True)
        self._fail_all(ConnectionError("publisher closed"))
        self._deadlines.close()
        await self._drop_producer()
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def publish(
        self, entries: list[Entry], *, deadline: float | None = None
    ) -> list[BaseException | None]:
        """Append ``(body, message id, traceparent)`` entries; one outcome per entry, ``None`` =
        confirmed. An entry still unconfirmed at ``deadline`` (the loop's clock) has the
        outcome ``TimeoutError``, and is not sent if it has not been yet."""
        if self._closed:
            raise ConnectionError("publisher closed")
        loop = asyncio.get_running_loop()
        futures = []
        for entry in entries:
            future: asyncio.Future[None] = loop.create_future()
            self._queue.append((entry, future))
            futures.append(future)
        if deadline is not None:
            self._deadlines.watch(deadline, futures)
        self._pacing.arrived(len(entries))
        self._wake.set()
        if len(futures) == 1:  # the gateway's case, once per chat message: no gather around it
            try:
                await futures[0]
            except Exception as exc:  # noqa: BLE001 - an outcome, as gather(return_exceptions) has it
                return [exc]
            return [None]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    # --- connection ---------------------------------------------------------------

    async def _connect(self) -> Producer:
        endpoint = self._endpoint
        # A new producer per outage (see _flush_forever), not rstream's own recovery; each
        # asks the next node, as the one it last used may be the one that went down.
        host, port = endpoint.address(self._connects)
        self._connects += 1
        producer = Producer(
            host,
            port,
            **endpoint.client_options(f"relaydesk-{self._name}", self._on_connection_closed),
        )
        try:
            await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
        except BaseException:
            await close_quietly(producer, CLOSE_TIMEOUT_S)
            raise
        self._producer = producer
        return producer

    async def _on_connection_closed(self, info: object) -> None:
        if self._closed:
            return
        log.warning(
            "stream_publisher_connection_lost",
            reason=str(getattr(info, "reason", ""))[:100],
            unconfirmed=len(self._pending),
        )
        # No confirm can arrive for what was in flight: hand it back to the callers now.
        self._fail_pending(ConnectionError("stream connection lost before the confirm"))
        # rstream runs this handler in the lost connection's listener task, and closing a
        # connection stops its listener and waits for it: closed from here, the listener
        # and the close would wait on each other for ever. Closed beside it instead.
        producer, self._producer = self._producer, None
        if producer is not None:
            closing = asyncio.get_running_loop().create_task(
                close_quietly(producer, CLOSE_TIMEOUT_S)
            )
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await close_quietly(producer, CLOSE_TIMEOUT_S)

    # --- flushing -----------------------------------------------------------------

    async def _flush_forever(self) -> None:
        delay = 0.1
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            hold_s = self._pacing.wait_s()
            if hold_s > 0:
                await asyncio.sleep(hold_s)  # gathering the next batch (see the module docstring)
            while not self._pacing.may_send(len(self._confirm_waits)):
                self._batch_confirmed.clear()
                await self._batch_confirmed.wait()  # what arrives meanwhile joins this batch
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                producer = self._producer or await self._connect()
                await self._send(producer, batch)
                delay = 0.1
            except Exception as exc:  # noqa: BLE001 - connection trouble: callers retry, we reconnect
                error = ConnectionError(f"stream publish failed: {type(exc).__name__}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                await self._give_up_connection(error)  # and the batches still on their way
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(RECONNECT_MAX_S, delay * 2)

    def _forget(self, publishing_id: int, _: asyncio.Future[None]) -> None:
        self._pending.pop(publishing_id, None)

    async def _send(
        self, producer: Producer, batch: list[tuple[Entry, asyncio.Future[None]]]
    ) -> None:
        batch = [item for item in batch if not item[1].done()]  # callers that gave up: not sent
        if not batch:
            return
        messages = []
        for (body, message_id, traceparent), future in batch:
            publishing_id = next(self._ids)
            self._pending[publishing_id] = future
            future.add_done_callback(functools.partial(self._forget, publishing_id))
            messages.append(
                RawMessage(
                    encode_message(body, message_id, traceparent), publishing_id=publishing_id
                )
            )
        await producer.send_batch(self._stream, messages, on_publish_confirm=self._on_confirm)
        self._pacing.sent()
        wait = asyncio.get_running_loop().create_task(
            self._await_confirms(producer, [future for _, future in batch])
        )
        self._confirm_waits.add(wait)
        wait.add_done_callback(self._batch_over)

    async def _await_confirms(
        self, producer: Producer, futures: list[asyncio.Future[None]]
    ) -> None:
        """Until a sent batch is confirmed; a confirm that never comes is failed here (or by
        the connection-lost handler, or the caller's deadline) and the connection renewed."""
        _, unconfirmed = await asyncio.wait(futures, timeout=CONFIRM_TIMEOUT_S)
        if not unconfirmed:
            return
        log.warning("stream_publisher_confirm_timeout", timeout_s=CONFIRM_TIMEOUT_S)
        error = ConnectionError("stream publish failed: confirm timed out")
        for future in unconfirmed:
            if not future.done():
                future.set_exception(error)
        if self._producer is producer:  # not replaced since: give it up
            await self._give_up_connection(error)

    async def _give_up_connection(self, error: BaseException) -> None:
        """Every batch still on its way went over the connection dropped now: no confirm
        can come for it any more."""
        self._fail_pending(error)
        await self._drop_producer()

    def _batch_over(self, wait: "asyncio.Task[None]") -> None:
        self._confirm_waits.discard(wait)
        self._batch_confirmed.set()

    def _on_confirm(self, status: ConfirmationStatus) -> None:
        future = self._pending.pop(status.message_id, None)
        if future is None or future.done():
            return
        if status.is_confirmed:
            future.set_result(None)
        elif status.response_code == LOST:
            future.set_exception(ConnectionError("stream connection lost before the confirm"))
        else:
            future.set_exception(PublishRefused(status.response_code))

    def _fail_pending(self, error: BaseException) -> None:
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def _fail_all(self, error: BaseException) -> None:
        self._fail_pending(error)
        for _, future in self._queue:
            if not future.done():
                future.set_exception(error)
        self._queue.clear()
