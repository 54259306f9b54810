"""The Bus: one robust AMQP connection per process for commands, queries and dead
letters, and one stream-protocol producer that appends events to the log.

Guarantees (docs/bus.md):
- ``publish`` returns only after the broker confirmed every event durable in the log
  stream (publisher confirms of the stream protocol). On a broken connection it retries
  with the same event id until ``publish_timeout_s``; consumers dedupe by id, so a retry
  that did land twice is harmless. A refusal (the stream is missing, access denied)
  raises at once.
- Nothing here is auto-acked.
"""

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, Protocol

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from contracts import topology as names
from contracts.envelope import Envelope
from relaydesk.bus.codec import envelope_body
from relaydesk.bus.endpoint import StreamEndpoint, split_urls
from relaydesk.bus.failover import FailoverConnection
from relaydesk.bus.publish_pacing import BatchPacing
from relaydesk.bus.stream_publisher import Entry, PublishRefused, StreamPublisher
from relaydesk.bus.topology import declare_core
from relaydesk.cancellation import cancel_requested, raise_if_cancel_requested
from relaydesk.metrics import (
    EVENTS_PUBLISHED,
    PUBLISH_CONFIRM_SECONDS,
    PUBLISH_FAILURES,
    series,
)
from relaydesk.settings import Settings
from relaydesk.tracing import current_traceparent

log = structlog.get_logger(__name__)


class _Reader(Protocol):
    async def close(self) -> None: ...


class PublishFailed(RuntimeError):
    """The broker did not confirm within the timeout; the caller must not ack its client."""


class Bus:
    """Owns the connection; hands out the publisher, log readers and RPC endpoints.

    Args:
        amqp_url: broker URL including the vhost.
        service: name used in the connection name and logs.
        publish_timeout_s: how long ``publish`` keeps retrying before it gives up.
        stream_url: where the log is read and appended (default: the AMQP host on port 5552).
        pacing: when the log publisher's batches leave (relaydesk/bus/publish_pacing.py).
    """

    def __init__(
        self,
        amqp_url: str,
        *,
        service: str,
        publish_timeout_s: float = 5.0,
        stream_url: str | None = None,
        pacing: BatchPacing | None = None,
    ) -> None:
        self.amqp_url = amqp_url
        self._pacing = pacing
        self.stream_endpoint = StreamEndpoint.from_urls(amqp_url, stream_url)
        self.service = service
        self.publish_timeout_s = publish_timeout_s
        self.connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._log: StreamPublisher | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._readers: set[_Reader] = set()  # log readers open or opening on it; closed with it

    @classmethod
    def from_settings(cls, settings: Settings, *, service: str) -> "Bus":
        """A service's bus as its settings describe it (not connected yet)."""
        return cls(
            settings.amqp_url,
            service=service,
            publish_timeout_s=settings.publish_timeout_s,
            stream_url=settings.stream_url,
            pacing=BatchPacing(
                settings.publish_batch_interval_ms / 1000, settings.publish_batching_from_per_s
            ),
        )

    async def connect(self) -> "Bus":
        self.connection = await self._connect_any_node()
        try:
            await self._set_up()
            # A cancel lost by a library's wait_for (relaydesk/cancellation.py) is one still.
            raise_if_cancel_requested()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError) and not cancel_requested():
                raise
            # Closed, or its connections go on reconnecting for a start nobody wants.
            await asyncio.shield(self.close())
            if isinstance(exc, asyncio.CancelledError):
                raise
            # Asked to stop, and a step failed on what the cancel left half done (seen in the
            # suite: a channel whose open was cancelled made the next open fail with aiormq's
            # "CHANNEL_ERROR - expected 'channel.open'"): the caller asked for a stop, not this.
            raise asyncio.CancelledError from exc
        log.info("bus_connected", service=self.service)
        return self

    async def _set_up(self) -> None:
        """The core topology, the publisher's channel and the log's stream publisher."""
        assert self.connection is not None
        setup = await self.connection.channel()
        await declare_core(setup)
        await setup.close()
        await self._open_publisher()
        self._log = StreamPublisher(
            self.stream_endpoint, names.LOG_STREAM, name=self.service, pacing=self._pacing
        )
        try:
            await self._log.start()
        except Exception as exc:
            await self.connection.close()
            endpoint = self.stream_endpoint
            raise ConnectionError(
                f"cannot reach RabbitMQ's stream protocol at {endpoint.host}:{endpoint.port} "
                f"(is the rabbitmq_stream plugin enabled?): {type(exc).__name__}: {exc}"
            ) from exc

    async def _connect_any_node(self) -> AbstractRobustConnection:
        """The first node of the list that answers; later reconnects move on by themselves."""
        urls = split_urls(self.amqp_url)
        for node in range(len(urls)):
            connection = FailoverConnection(
                urls,
                first=node,
                client_properties={"connection_name": f"relaydesk-{self.service}"},
                reconnect_interval=1,
            )
            try:
                await connection.connect(timeout=10)
                return connection
            except (ConnectionError, OSError, aiormq.exceptions.AMQPConnectionError) as exc:
                await connection.close()
                if node == len(urls) - 1:
                    raise
                log.warning("broker_node_unreachable", node=node, error=type(exc).__name__)
            except asyncio.CancelledError:
                # Closed, or the robust connection goes on reconnecting for nobody.
                await asyncio.shield(connection.close())
                raise
        raise AssertionError("unreachable: split_urls returns at least one URL")

    async def _open_publisher(self) -> None:
        assert self.connection is not None
        self._publish_channel = await self.connection.channel(
            publisher_confirms=True, on_return_raises=True
        )

    @property
    def clustered(self) -> bool:
        """Given several broker nodes: what the bus declares is replicated across them."""
        return len(split_urls(self.amqp_url)) > 1

    @property
    def connected(self) -> bool:
        """The AMQP connection is up now (False while it reconnects). The stream publisher
        connects again on the next publish, so it does not count here."""
        return self.connection is not None and self.connection.connected.is_set()

    def close_later(self, closing: Coroutine[Any, Any, None]) -> None:
        """Finish closing a reader's connection in the background; ``close()`` waits for it.

        The stream client's polite close takes ~0.45 s per connection; a service stopping
        its reader and then its bus would pay it twice, one after the other.
        """
        task = asyncio.get_running_loop().create_task(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def reader_opened(self, reader: _Reader) -> None:
        self._readers.add(reader)

    def reader_closed(self, reader: _Reader) -> None:
        self._readers.discard(reader)

    async def close(self) -> None:
        # A reader its owner left open would keep its own connection, and reconnect forever
        # once the broker drops it (its vhost deleted): the bus it reads through closes it.
        for reader in list(self._readers):
            await reader.close()
        closing: list[Any] = list(self._closing)
        if self._log is not None:
            closing.append(self._log.close())
        if self.connection is not None and not self.connection.is_closed:
            closing.append(self.connection.close())
        await asyncio.gather(*closing)

    async def channel(
        self, *, prefetch: int | None = None, confirms: bool = False
    ) -> AbstractChannel:
        """A fresh channel for a consumer (one per consumer, so flow control is separate)."""
        assert self.connection is not None, "connect() first"
        channel = await self.connection.channel(
            publisher_confirms=confirms, on_return_raises=confirms
        )
        if prefetch is not None:
            await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def publish(self, envelope: Envelope) -> None:
        """Publish one event durably; raises :class:`PublishFailed` when it cannot."""
        await self.publish_many((envelope,))

    async def publish_many(self, envelopes: Iterable[Envelope]) -> None:
        """Publish events (one frame per batch, pipelined confirms); all confirmed on return."""
        assert self._log is not None, "connect() first"
        traceparent = current_traceparent()  # None unless tracing is on (relaydesk/tracing.py)
        pending = [(envelope_body(e), e.id, traceparent) for e in envelopes]
        if not pending:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self._append(pending, deadline=started + self.publish_timeout_s)
        except PublishFailed:
            series(PUBLISH_FAILURES, self.service).inc()
            raise
        series(PUBLISH_CONFIRM_SECONDS, self.service).observe(loop.time() - started)
        series(EVENTS_PUBLISHED, self.service).inc(len(pending))

    async def _append(self, pending: list[Entry], *, deadline: float) -> None:
        """Retry what was not confirmed, with the same ids, until ``deadline``."""
        assert self._log is not None, "connect() first"
        loop = asyncio.get_running_loop()
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PublishFailed(
                    f"{len(pending)} event(s) not confirmed within {self.publish_timeout_s}s"
                )
            # The publisher fails what is unconfirmed at the deadline (one sweep for every
            # caller, relaydesk/bus/deadline_sweep.py): no timer per publish.
            outcomes = await self._log.publish(pending, deadline=deadline)
            if any(isinstance(outcome, TimeoutError) for outcome in outcomes):
                continue  # the deadline check above reports it
            retry = []
            for entry, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, PublishRefused):
                    raise PublishFailed(f"the log refused event {entry[1]}: {outcome}") from outcome
                if outcome is not None:
                    retry.append(entry)
            if retry:
                log.warning(
                    "publish_retry",
                    events=len(retry),
                    error=type(next(o for o in outcomes if o is not None)).__name__,
                )
                await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
            pending = retry

    async def dead_letter(
        self, body: bytes, *, reason: str, source: str, headers: dict[str, Any] | None = None
    ) -> None:
        """Park something we cannot process, with a reason, on the dead-letter exchange."""
        message = aio_pika.Message(
            body=body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={
                **(headers or {}),
                "x-relaydesk-reason": reason[:500],
                "x-relaydesk-source": source,
            },
        )
        assert self._publish_channel is not None
        dead = await self._publish_channel.get_exchange(names.DEAD_EXCHANGE)
        await dead.publish(message, routing_key="", mandatory=True, timeout=self.publish_timeout_s)
        log.warning("dead_lettered", reason=reason[:200], source=source)
