"""Where log readers and the log publisher connect (the broker's stream-protocol port),
and what both do alike with their rstream clients: how they are opened and closed."""

import asyncio
import random
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from rstream.recovery import BackOffRecoveryStrategy

from relaydesk.bus import rstream_frames

log = structlog.get_logger(__name__)

# Every stream client of relaydesk is made with the options below: the frames each chunk
# and each confirm cost are decoded without rstream's generic codec (rstream_frames.py).
rstream_frames.install()


@dataclass(frozen=True)
class StreamEndpoint:
    """Where log readers and the publisher connect: the same broker (or cluster), user and
    vhost, on the stream protocol port.

    ``addresses`` lists every node given (host, port); a client that loses its connection
    or cannot open one tries the next (``address(attempt)``). With one address the client
    connects where it was told (``load_balancer_mode``: a single node, or a load balancer,
    may advertise a name we cannot reach); with several it asks the node it reached where
    the stream's leader and replicas are and connects to them by their advertised
    addresses, so a cluster's nodes must advertise addresses the clients can reach
    (``stream.advertised_host`` / ``stream.advertised_port``).
    """

    addresses: tuple[tuple[str, int], ...]
    username: str
    password: str
    vhost: str
    heartbeat_s: int = 10

    @property
    def host(self) -> str:
        return self.addresses[0][0]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    def address(self, attempt: int) -> tuple[str, int]:
        """The node to try on this attempt: round robin over the nodes given."""
        return self.addresses[attempt % len(self.addresses)]

    @classmethod
    def from_urls(cls, amqp_url: str, stream_url: str | None = None) -> "StreamEndpoint":
        """``stream_url`` (``rabbitmq-stream://user:pass@host:5552/vhost``, or several separated
        by commas, one per node) wins; else every AMQP URL's host on port 5552."""
        urls = split_urls(stream_url or amqp_url)
        parsed = [urllib.parse.urlsplit(url) for url in urls]
        first = parsed[0]
        path = first.path[1:] if first.path.startswith("/") else first.path
        return cls(
            addresses=tuple(
                (
                    node.hostname or "127.0.0.1",
                    (node.port or DEFAULT_STREAM_PORT) if stream_url else DEFAULT_STREAM_PORT,
                )
                for node in parsed
            ),
            username=urllib.parse.unquote(first.username or "guest"),
            password=urllib.parse.unquote(first.password or "guest"),
            vhost=urllib.parse.unquote(path) or "/",
        )

    def client_options(
        self, connection_name: str, on_close: Callable[[Any], Awaitable[None]]
    ) -> dict[str, Any]:
        """Keyword arguments for an rstream ``Consumer`` or ``Producer`` on this endpoint."""
        return {
            "username": self.username,
            "password": self.password,
            "vhost": self.vhost,
            "load_balancer_mode": len(self.addresses) == 1,
            "heartbeat": self.heartbeat_s,
            "connection_name": connection_name,
            "on_close_handler": on_close,
            # rstream's own recovery resubscribes from its idea of the offset and republishes
            # nothing; ours resubscribes after the last position handed out and retries by id.
            "recovery_strategy": BackOffRecoveryStrategy(False),
        }


def split_urls(urls: str) -> list[str]:
    """A broker URL, or one per cluster node separated by commas."""
    listed = [url.strip() for url in urls.split(",") if url.strip()]
    if not listed:
        raise ValueError("no broker URL given")
    return listed


DEFAULT_STREAM_PORT = 5552


class _Closable(Protocol):
    async def close(self) -> None: ...


async def open_with_retry(
    attempt: Callable[[], Awaitable[object]],
    *,
    retryable: tuple[type[BaseException], ...],
    within_s: float,
    first_delay_s: float,
    max_delay_s: float,
    on_retry: Callable[[BaseException], None],
    give_up: Callable[[], bool] = lambda: False,
) -> None:
    """Run ``attempt`` (a publisher's or a reader's first connection) until it succeeds.

    A ``retryable`` failure (a broker slow to accept, a stream whose leader is not up yet) is
    tried again with jittered, doubling backoff while ``within_s`` lasts and ``give_up()`` is
    false, then raised. A refused connection is raised at once: nothing listens there (the
    stream plugin is off), and waiting would only hide it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    delay = first_delay_s
    while True:
        try:
            await attempt()
            return
        except retryable as exc:
            refused = isinstance(exc, ConnectionRefusedError)
            if refused or give_up() or loop.time() + delay >= deadline:
                raise
            on_retry(exc)
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(max_delay_s, delay * 2)


async def close_quietly(client: _Closable, timeout: float) -> None:
    """Close an rstream client; a dead connection cannot be closed politely, and need not be.

    rstream's own ``close()`` takes its connections down one after another, and each one
    pauses 0.2 s after its Close handshake: a reader (a locator and a data connection, the
    data one closed once by the unsubscribe and again by the pool) paid the pause two or
    three times. Here every connection of the client gets the same polite close (the Close
    handshake), all at once; closing a connection ends its subscriptions and publishers on
    the broker, so the per-subscription goodbyes are not needed. A client that does not
    look as expected (another rstream) is closed its own way.
    """
    connections = _connections_of(client)
    try:
        # rstream's Client.close() awaits its Close request inside ``except BaseException``
        # and goes on: a cancel of the task running it is swallowed there. It is never run in
        # the caller's task here: wait_for and gather each run it in a task of their own and,
        # cancelled, raise CancelledError in ours once it is done, whatever it did with the
        # cancel (tests/foundation/test_close_quietly.py). Awaited directly, it would lose it.
        if connections is None:
            await asyncio.wait_for(client.close(), timeout)
            return
        stop = getattr(client, "stop", None)
        if callable(stop):
            stop()  # a consumer's run() returns
        # A timeout around the gather, not wait_for(gather): cancelled midway (a service
        # stopped while it starts), wait_for cancels the gathered future and leaves its
        # CancelledError unretrieved, an "exception was never retrieved" error in the log.
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(connection.close() for connection in connections))
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.debug("stream_client_close_failed", error=type(exc).__name__)


def _connections_of(client: object) -> list[_Closable] | None:
    """The connections in an rstream consumer's or producer's pool, taken out of it."""
    pool = getattr(client, "_pool", None)
    pooled = getattr(pool, "_clients", None)
    if not isinstance(pooled, dict):
        return None
    connections = [connection for group in pooled.values() for connection in group]
    pooled.clear()
    return connections
