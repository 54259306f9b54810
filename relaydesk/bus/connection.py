"""The Bus: one robust AMQP connection per process, with channels for each job.

Guarantees (docs/bus.md):
- ``publish`` returns only after the broker confirmed the message durable *and* routed
  (persistent + publisher confirms + mandatory with ``on_return_raises``). On a broken
  connection it retries with the same event id until ``publish_timeout_s``; consumers
  dedupe by id, so a retry that did land twice is harmless.
- Nothing here is auto-acked.
"""

import asyncio
from collections.abc import Iterable
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, DeliveryError, PublishError

from contracts import topology as names
from contracts.envelope import Envelope
from relaydesk.bus.codec import encode_envelope
from relaydesk.bus.topology import declare_core

log = structlog.get_logger(__name__)

RETRYABLE = (AMQPError, ChannelInvalidStateError, ConnectionError, asyncio.TimeoutError, RuntimeError)


class PublishFailed(RuntimeError):
    """The broker did not confirm within the timeout; the caller must not ack its client."""


class Bus:
    """Owns the connection; hands out the publisher, log readers and RPC endpoints.

    Args:
        amqp_url: broker URL including the vhost.
        service: name used in the connection name and logs.
        publish_timeout_s: how long ``publish`` keeps retrying before it gives up.
    """

    def __init__(self, amqp_url: str, *, service: str, publish_timeout_s: float = 5.0) -> None:
        self.amqp_url = amqp_url
        self.service = service
        self.publish_timeout_s = publish_timeout_s
        self.connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
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
        self._events = await self._publish_channel.get_exchange(names.EVENTS_EXCHANGE)

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
        messages = [(e.routing_key, encode_envelope(e)) for e in envelopes]
        deadline = asyncio.get_running_loop().time() + self.publish_timeout_s
        pending = messages
        while pending:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise PublishFailed(f"{len(pending)} event(s) not confirmed within {self.publish_timeout_s}s")
            pending = await self._try_publish(pending, remaining)

    async def _try_publish(self, messages: list[tuple[str, aio_pika.Message]], timeout: float) -> list[tuple[str, aio_pika.Message]]:
        exchange = self._events
        if exchange is None or self._publish_channel is None or self._publish_channel.is_closed:
            await self._reopen_publisher(timeout)
            return messages
        results = await asyncio.gather(
            *(asyncio.wait_for(exchange.publish(m, routing_key=k, mandatory=True, timeout=timeout), timeout) for k, m in messages),
            return_exceptions=True,
        )
        failed = []
        for (key, message), result in zip(messages, results, strict=True):
            if isinstance(result, (PublishError, DeliveryError)):
                raise PublishFailed(f"broker refused {message.type}: {result}") from result
            if isinstance(result, BaseException):
                log.warning("publish_retry", error=type(result).__name__, event_type=message.type)
                failed.append((key, message))
        if failed:
            await asyncio.sleep(0.2)  # LIMIT: fixed back-off while the robust connection reconnects
        return failed

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
