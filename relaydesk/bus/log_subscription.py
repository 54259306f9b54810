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

Flow control is the protocol's credit: rstream returns one chunk's credit as it starts
handing a chunk's entries to ``deliver``, and ``deliver`` awaits room downstream, so a slow
owner holds the broker back instead of buffering the log in memory.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from rstream import Consumer, ConsumerOffsetSpecification, MessageContext

from contracts import topology as names
from relaydesk.bus.endpoint import StreamEndpoint, close_quietly

log = structlog.get_logger(__name__)

INITIAL_CREDIT = 8  # chunks in flight towards this subscription
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 3.0
CLOSE_TIMEOUT_S = 3.0

# position, the raw AMQP 1.0 message, the chunk's broker timestamp (ms)
Deliver = Callable[[int, bytes, int], Awaitable[None]]


class LogSubscription:
    """Args:
    endpoint: where the broker's stream protocol listens.
    connection_name: shows in the broker's management UI.
    name: for logs.
    offset: where to (re)subscribe, asked at every subscription.
    deliver: receives each entry; awaiting it holds the broker back.
    on_lost: called when the connection is lost, before anything is resubscribed.
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
    ) -> None:
        self._endpoint = endpoint
        self._connection_name = connection_name
        self._name = name
        self._offset = offset
        self._deliver = deliver
        self._on_lost = on_lost
        self._generation = 0
        self._attempts = 0  # subscriptions so far, successful or not: picks the node
        self._consumer: Consumer | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def subscribed(self) -> bool:
        """Attached to the log now (False while it resubscribes after a connection loss)."""
        return self._consumer is not None and not self._closed

    async def open(self) -> None:
        await self._subscribe()

    def close(self) -> Coroutine[Any, Any, None] | None:
        """Stop delivering at once; returns the connection's closing for the owner to await."""
        self._closed = True
        self._generation += 1
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        consumer, self._consumer = self._consumer, None
        return None if consumer is None else close_quietly(consumer, CLOSE_TIMEOUT_S)

    async def _subscribe(self) -> None:
        self._generation += 1
        generation = self._generation
        # Each new subscription asks the next node: the one last used may be the one down.
        host, port = self._endpoint.address(self._attempts)
        self._attempts += 1
        consumer = Consumer(
            host,
            port,
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
                initial_credit=INITIAL_CREDIT,
            )
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
