"""Connecting to the stream protocol on a broker that is slow to accept, or not there.

Seen in the suite on a busy machine: `relaydesk admin create-tenant` failed with "cannot
reach RabbitMQ's stream protocol" because the broker took longer than rstream's 3 s to
accept one TCP connection. A broker slow to answer is tried again (the AMQP side is given
10 s); a port nobody listens on is still reported at once.
"""

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from rstream import ConsumerOffsetSpecification, OffsetType
from structlog.testing import capture_logs

from contracts import topology as names
from contracts.envelope import Actor, Envelope
from relaydesk.bus import Bus
from relaydesk.bus.connection import PublishFailed
from relaydesk.bus.endpoint import StreamEndpoint
from relaydesk.bus.log_subscription import LogSubscription
from relaydesk.bus.stream_publisher import StreamPublisher
from relaydesk.settings import Settings
from tests.admin.helpers import eventually

HELD_S = 3.5  # past rstream's connect timeout (3 s)


class SlowToAccept:
    """A TCP relay to the broker's stream port whose listen queue is full for ``HELD_S``: the
    kernel drops new connections' SYNs meanwhile, as for a broker whose acceptor is behind."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        # fill the queue (Linux's backlog 0 holds one connection) with one never accepted
        self.fillers = [socket.create_connection(("127.0.0.1", self.port), timeout=2)]
        self.relays: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        await asyncio.sleep(HELD_S)
        for filler in self.fillers:
            filler.close()
        loop = asyncio.get_running_loop()
        while True:
            client, _ = await loop.sock_accept(self.listener)
            task = loop.create_task(self._relay(client))
            self.relays.add(task)
            task.add_done_callback(self.relays.discard)

    async def _relay(self, client: socket.socket) -> None:
        try:
            client_reader, client_writer = await asyncio.open_connection(sock=client)
        except OSError:
            return  # a filler, closed before it was accepted
        broker_reader, broker_writer = await asyncio.open_connection(*self.target)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(
            pipe(client_reader, broker_writer),
            pipe(broker_reader, client_writer),
            return_exceptions=True,
        )


@pytest.fixture
async def slow_broker(bus: Bus) -> AsyncIterator[tuple[StreamEndpoint, SlowToAccept]]:
    real = bus.stream_endpoint  # the bus declared the log stream in the test's vhost
    relay = SlowToAccept(real.address(0))
    serving = asyncio.create_task(relay.serve())
    yield dataclasses.replace(real, addresses=(("127.0.0.1", relay.port),)), relay
    serving.cancel()
    for task in list(relay.relays):
        task.cancel()
    await asyncio.gather(serving, *relay.relays, return_exceptions=True)
    relay.listener.close()


async def test_a_broker_slow_to_accept_is_tried_again_and_the_publisher_starts(
    slow_broker: tuple[StreamEndpoint, SlowToAccept],
) -> None:
    endpoint, _ = slow_broker
    publisher = StreamPublisher(endpoint, names.LOG_STREAM, name="slow-accept-test")
    started = time.monotonic()
    try:
        await publisher.start()
        assert time.monotonic() - started >= 3, "the first connect should have timed out"
        outcomes = await publisher.publish([(b'{"slow": "accept"}', "slow-accept-1", None)])
        assert outcomes == [None]  # confirmed through the connection made on the retry
    finally:
        await publisher.close()


async def test_nothing_listening_is_reported_at_once(settings: Settings) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed at once: nobody listens there
    real = StreamEndpoint.from_urls(settings.amqp_url, settings.stream_url)
    endpoint = dataclasses.replace(real, addresses=(("127.0.0.1", port),))
    publisher = StreamPublisher(endpoint, names.LOG_STREAM, name="refused-test")
    with pytest.raises(ConnectionRefusedError):
        await publisher.start()
    await publisher.close()


class BrokerRelay:
    """A TCP relay to the broker's stream port. Once ``silent`` is set it forwards nothing more
    either way (a broker that stopped answering without closing the connection); ``cut()``
    drops every connection at once (a broker node going away)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.silent = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        broker_reader, broker_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, broker_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if not self.silent:
                    sink.write(data)
                    await sink.drain()

        for source, sink in ((reader, broker_writer), (broker_reader, writer)):
            task = asyncio.create_task(pipe(source, sink))
            self.pipes.add(task)

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        for task in self.pipes:
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        if self.server is not None:
            self.server.close()


async def test_a_publish_the_log_never_confirms_fails_at_its_deadline(
    settings: Settings, bus: Bus
) -> None:
    relay = BrokerRelay(bus.stream_endpoint.address(0))
    port = await relay.start()
    amqp = urlsplit(settings.amqp_url)
    silent = Bus(
        settings.amqp_url,
        service="silent-test",
        publish_timeout_s=1.0,
        stream_url=f"rabbitmq-stream://{amqp.username}:{amqp.password}@127.0.0.1:{port}{amqp.path}",
    )
    await silent.connect()
    try:
        relay.silent = True
        envelope = Envelope(
            id="e-silent-1",
            type="test.silent",
            tenant="t",
            stream="s",
            actor=Actor(kind="system", id="test"),
            data={},
        )
        started = time.monotonic()
        with pytest.raises(PublishFailed, match="not confirmed within"):
            await silent.publish(envelope)
        assert 1.0 <= time.monotonic() - started < 5.0  # at the deadline, not the 10 s confirm wait
    finally:
        await relay.stop()
        await silent.close()


async def test_a_log_reader_on_a_broker_slow_to_accept_subscribes_on_the_retry(
    slow_broker: tuple[StreamEndpoint, SlowToAccept], bus: Bus
) -> None:
    """Seen in CI: billing's start failed with "Could not connect to 127.0.0.1:5552" (rstream's
    3 s connect timeout on the busy machine) where the publisher would have tried again."""
    endpoint, _ = slow_broker
    entries: list[int] = []
    subscription = LogSubscription(
        endpoint,
        connection_name="slow-accept-reader",
        name="slow-accept-reader",
        offset=lambda: ConsumerOffsetSpecification(OffsetType.FIRST),
        deliver=lambda position, raw, ts: _note(entries, position),
    )
    started = time.monotonic()
    await subscription.open()
    try:
        assert time.monotonic() - started >= 3, "the first connect should have timed out"
        assert subscription.subscribed
    finally:
        closing = subscription.close()
        if closing is not None:
            await closing


async def _note(entries: list[int], position: int) -> None:
    entries.append(position)


def connection_listeners() -> set[asyncio.Task[object]]:
    """rstream's listener tasks, one per open connection."""
    return {
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "BaseClient._listener"
    }


async def test_a_cut_connection_is_dropped_and_the_next_publish_goes_through(bus: Bus) -> None:
    """Seen at the end of the suite's broker-outage tests: "RecursionError: maximum recursion
    depth exceeded" while the loop cancelled what was left. rstream calls the connection-closed
    handler from the connection's own listener task; the publisher's handler closed that
    connection there and then, and a connection's close stops (and waits for) its listener:
    the two waited on each other for ever (a leak per outage), and cancelling either one
    recursed around the loop."""
    relay = BrokerRelay(bus.stream_endpoint.address(0))
    port = await relay.start()
    endpoint = dataclasses.replace(bus.stream_endpoint, addresses=(("127.0.0.1", port),))
    publisher = StreamPublisher(endpoint, names.LOG_STREAM, name="cut-test")
    listening_before = connection_listeners()  # the bus's own connections
    await publisher.start()
    try:
        assert await publisher.publish([(b'{"cut": "before"}', "cut-before", None)]) == [None]
        cut_off = connection_listeners() - listening_before
        assert cut_off, "the publisher's connection should have a listener"
        with capture_logs() as logs:
            relay.cut()
            await eventually(
                lambda: any(e["event"] == "stream_publisher_connection_lost" for e in logs),
                what="the publisher to notice the cut",
            )
        await eventually(
            lambda: all(listener.done() for listener in cut_off),
            timeout=10,
            what="the lost connection's listener to finish",
        )
        assert await publisher.publish([(b'{"cut": "after"}', "cut-after", None)]) == [None]
    finally:
        await publisher.close()
        await relay.stop()
