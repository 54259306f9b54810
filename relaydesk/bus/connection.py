"""The Bus: one robust AMQP connection per process, with channels for each job.

Guarantees (docs/bus.md):
- ``publish`` returns only after the broker confirmed the message durable *and* routed
  (persistent + publisher confirms + mandatory with ``on_return_raises``). On a broken
  connection it retries with the same event id until ``publish_timeout_s``; consumers
  dedupe by id, so a retry that did land twice is harmless.
- Nothing here is auto-acked.
"""

import asyncio
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, DeliveryError, PublishError

from contracts import topology as names
from contracts.envelope import Envelope
from relaydesk.bus.codec import Outgoing, outgoing
from relaydesk.bus.topology import declare_core

log = structlog.get_logger(__name__)

RETRYABLE = (AMQPError, ChannelInvalidStateError, ConnectionError, asyncio.TimeoutError, RuntimeError)


@dataclass(frozen=True)
class StreamEndpoint:
    """Where log readers connect: the same broker, user and vhost, on the stream protocol port."""

    host: str
    port: int
    username: str
    password: str
    vhost: str
    heartbeat_s: int = 10

    @classmethod
    def from_urls(cls, amqp_url: str, stream_url: str | None = None) -> "StreamEndpoint":
        """``stream_url`` (``rabbitmq-stream://user:pass@host:5552/vhost``) wins; else the AMQP URL on port 5552."""
        parsed = urllib.parse.urlsplit(stream_url or amqp_url)
        path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=(parsed.port or DEFAULT_STREAM_PORT) if stream_url else DEFAULT_STREAM_PORT,
            username=urllib.parse.unquote(parsed.username or "guest"),
            password=urllib.parse.unquote(parsed.password or "guest"),
            vhost=urllib.parse.unquote(path) or "/",
        )


DEFAULT_STREAM_PORT = 5552


class PublishFailed(RuntimeError):
    """The broker did not confirm within the timeout; the caller must not ack its client."""


class Bus:
    """Owns the connection; hands out the publisher, log readers and RPC endpoints.

    Args:
        amqp_url: broker URL including the vhost.
        service: name used in the connection name and logs.
        publish_timeout_s: how long ``publish`` keeps retrying before it gives up.
        stream_url: where log readers connect (default: the AMQP host on port 5552).
    """

    def __init__(self, amqp_url: str, *, service: str, publish_timeout_s: float = 5.0, stream_url: str | None = None) -> None:
        self.amqp_url = amqp_url
        self.stream_endpoint = StreamEndpoint.from_urls(amqp_url, stream_url)
        self.service = service
        self.publish_timeout_s = publish_timeout_s
        self.connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._publish_lock = asyncio.Lock()

    async def connect(self) -> "Bus":
        self.connection = await aio_pika.connect_robust(
            self.amqp_url,
            client_properties={"connection_name": f"relaydesk-{self.service}"},
            reconnect_interval=1,
            timeout=10,
        )
        setup = await self.connection.channel()
        await declare_core(setup)
        await setup.close()
        await self._open_publisher()
        log.info("bus_connected", service=self.service)
        return self

    async def _open_publisher(self) -> None:
        assert self.connection is not None
        self._publish_channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)

    async def close(self) -> None:
        if self.connection is not None and not self.connection.is_closed:
            await self.connection.close()

    async def channel(self, *, prefetch: int | None = None, confirms: bool = False) -> AbstractChannel:
        """A fresh channel for a consumer (each consumer gets its own so flow control is separate)."""
        assert self.connection is not None, "connect() first"
        channel = await self.connection.channel(publisher_confirms=confirms, on_return_raises=confirms)
        if prefetch is not None:
            await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def publish(self, envelope: Envelope) -> None:
        """Publish one event durably; raises :class:`PublishFailed` when it cannot."""
        await self.publish_many((envelope,))

    async def publish_many(self, envelopes: Iterable[Envelope]) -> None:
        """Publish events with pipelined confirms; returns when every one is confirmed."""
        messages = [outgoing(e) for e in envelopes]
        deadline = asyncio.get_running_loop().time() + self.publish_timeout_s
        pending = messages
        while pending:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise PublishFailed(f"{len(pending)} event(s) not confirmed within {self.publish_timeout_s}s")
            pending = await self._try_publish(pending, remaining)

    async def _try_publish(self, messages: list[Outgoing], timeout: float) -> list[Outgoing]:
        channel = self._publish_channel
        if channel is None or channel.is_closed:
            await self._reopen_publisher(timeout)
            return messages
        try:
            underlay = await asyncio.wait_for(channel.get_underlay_channel(), timeout)
        except RETRYABLE as exc:
            log.warning("publish_retry", error=type(exc).__name__, events=len(messages))
            await asyncio.sleep(0.2)
            return messages
        # The chat hot path publishes one event at a time: no gather, no extra task.
        if len(messages) == 1:
            results = [await self._publish_one(underlay, messages[0], timeout)]
        else:
            results = await asyncio.gather(*(self._publish_one(underlay, m, timeout) for m in messages))
        failed = []
        for message, result in zip(messages, results, strict=True):
            if isinstance(result, (PublishError, DeliveryError)):
                raise PublishFailed(f"broker refused {message.event_type}: {result}") from result
            if result is not None:
                log.warning("publish_retry", error=type(result).__name__, event_type=message.event_type)
                failed.append(message)
        if failed:
            await asyncio.sleep(0.2)  # LIMIT: fixed back-off while the robust connection reconnects
        return failed

    @staticmethod
    async def _publish_one(underlay: aiormq.abc.AbstractChannel, message: Outgoing, timeout: float) -> Exception | None:
        """Publish straight through aiormq, without waiting for a socket drain per message.

        aio-pika's ``Exchange.publish`` holds the channel lock until the writer has flushed
        each message; under load that serialises every publish behind the socket. The
        confirm is what makes a message durable, and that we still await.
        """
        try:
            async with asyncio.timeout(timeout):
                await underlay.basic_publish(
                    message.body, exchange=names.EVENTS_EXCHANGE, routing_key=message.routing_key,
                    properties=message.properties, mandatory=True, wait=False,
                )
        except Exception as exc:  # returned to the caller: refusals raise, the rest is retried
            return exc
        return None

    async def _reopen_publisher(self, timeout: float) -> None:
        async with self._publish_lock:
            if self._publish_channel is not None and not self._publish_channel.is_closed:
                return
            try:
                await asyncio.wait_for(self._open_publisher(), timeout)
            except RETRYABLE as exc:
                log.warning("publisher_reopen_failed", error=type(exc).__name__)
                await asyncio.sleep(0.2)

    async def dead_letter(self, body: bytes, *, reason: str, source: str, headers: dict[str, Any] | None = None) -> None:
        """Park something we cannot process, with a reason, on the dead-letter exchange."""
        message = aio_pika.Message(
            body=body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={**(headers or {}), "x-relaydesk-reason": reason[:500], "x-relaydesk-source": source},
        )
        assert self._publish_channel is not None
        dead = await self._publish_channel.get_exchange(names.DEAD_EXCHANGE)
        await dead.publish(message, routing_key="", mandatory=True, timeout=self.publish_timeout_s)
        log.warning("dead_lettered", reason=reason[:200], source=source)
