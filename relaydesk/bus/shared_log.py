"""One subscription to the log per process, shared by every reader opened through it.

Each reader of the log costs the broker a delivery of every chunk and the process a
decode of every frame; the agent process reads the log for routing and for
administration, so it reads it once for both (docs/performance.md, lever (b)).

Readers keep everything a reader of its own has (``LogReader``): its bounded inbox, its
``last_position``, its batches, its lag. What the sharing adds:

- **Catch-up, then handover.** The first reader opened starts the shared subscription at
  its own start. A reader opened later (routing after administration has caught up; again,
  at an earlier position, whenever routing rebuilds) reads from its own start over a
  subscription of its own until that reaches what the shared one has handed out (its
  *head*), then joins the shared one and its own is closed. At the moment it joins it holds
  every position up to the head (or beyond), and the shared subscription hands it every
  position after the head; whatever it gets twice it drops by position, so nothing is
  missed and nothing handed out twice. A reader whose numeric start is ahead of the head
  joins at once and drops what comes before its start.
- **Backpressure.** The shared subscription awaits room in each joined reader's inbox in
  turn: the slowest reader sets the pace for all, as one reader's own prefetch did.
- **Reconnect.** After a connection loss the shared subscription resumes after its head;
  the readers' inboxes keep what they hold. A reader catching up resumes its own
  subscription after its last position, as a reader of its own does.

The shared subscription ends when its last reader closes; the next reader opened starts a
new one at its own start.
"""

import asyncio

import structlog
from rstream import ConsumerOffsetSpecification, OffsetType

from relaydesk.bus.connection import Bus
from relaydesk.bus.endpoint import StreamEndpoint
from relaydesk.bus.log_reader import LogReader, Start, decoded, offset_of
from relaydesk.bus.log_subscription import LogSubscription, ReaderClosed
from relaydesk.settings import Settings

log = structlog.get_logger(__name__)


class SharedLog:
    """Args:
    endpoint: where the broker's stream protocol listens.
    service: the process's service name (the connection is ``relaydesk-<service>-log``).
    """

    def __init__(self, endpoint: StreamEndpoint, *, service: str) -> None:
        self._endpoint = endpoint
        self._service = service
        self._subscription: LogSubscription | None = None
        self._start: Start = "first"
        # The last position handed to the joined readers (None: nothing yet).
        self.head: int | None = None
        self._joined: list[LogReader] = []
        self._catching_up: dict[LogReader, LogSubscription] = {}
        # One entry is handed to every joined reader before the next one starts, also when
        # a resubscription delivers while the old subscription finishes its last entry.
        self._order = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    @classmethod
    def of(cls, settings: Settings, *, service: str) -> "SharedLog":
        """The shared log of the broker the settings name."""
        endpoint = StreamEndpoint.from_urls(settings.amqp_url, settings.stream_url)
        return cls(endpoint, service=service)

    @property
    def subscribed(self) -> bool:
        return self._subscription is not None and self._subscription.subscribed

    def reader(
        self,
        bus: Bus,
        *,
        start: Start = "first",
        prefetch: int = 2000,
        name: str = "reader",
    ) -> LogReader:
        """A reader of this process's log (``open()`` it): dead letters go through ``bus``."""
        return LogReader(bus, start=start, prefetch=prefetch, name=name, shared=self)

    def joined(self, reader: LogReader) -> bool:
        """The reader reads through the shared subscription now (not catching up)."""
        return reader in self._joined

    async def attach(self, reader: LogReader) -> None:
        """Called by ``reader.open()``: join now, or catch up first."""
        if self._subscription is None:
            await self._start_shared(reader)
            return
        start = reader.start
        if isinstance(start, int) and self.head is not None and start > self.head:
            self._join(reader)
            return
        subscription = reader.own_subscription(
            deliver=lambda position, raw, timestamp: self._catch_up(
                reader, position, raw, timestamp
            )
        )
        self._catching_up[reader] = subscription
        reader.source = subscription
        try:
            await subscription.open()
        except ReaderClosed:
            if not self.joined(reader):
                raise  # closed with its reader
            # Caught up before its own subscription's open returned (a reader just behind the
            # head): _catch_up closed that subscription, and the reader reads the shared one.
            return
        except BaseException:
            self._catching_up.pop(reader, None)
            raise
        log.info("shared_log_catch_up", reader=reader.name, head=self.head)

    def detach(self, reader: LogReader) -> None:
        """Called by ``reader.close()``; the last reader out ends the shared subscription."""
        if reader in self._joined:
            self._joined.remove(reader)
        subscription = self._catching_up.pop(reader, None)
        if subscription is not None:
            self._close_later(subscription)
        if not self._joined and not self._catching_up and self._subscription is not None:
            self._close_later(self._subscription)
            self._subscription, self.head = None, None

    async def close(self) -> None:
        """Wait for the connections of ended subscriptions to finish closing."""
        for reader in [*self._joined, *self._catching_up]:
            await reader.close()
        await asyncio.gather(*self._closing)

    async def _start_shared(self, reader: LogReader) -> None:
        self._start = reader.start
        self._joined.append(reader)
        reader.source = self
        subscription = self._subscription = LogSubscription(
            self._endpoint,
            connection_name=f"relaydesk-{self._service}-log",
            name=f"{self._service}-log",
            offset=self._resume_offset,
            deliver=self._hand_out,
        )
        try:
            await subscription.open()
        except BaseException:
            # The reader's close() may have detached it already, and another reader may have
            # started the next shared subscription since: only what is still this open's.
            if reader in self._joined:
                self._joined.remove(reader)
            if self._subscription is subscription:
                self._subscription = None
            raise

    def _resume_offset(self) -> ConsumerOffsetSpecification:
        if self.head is not None:
            return ConsumerOffsetSpecification(OffsetType.OFFSET, self.head + 1)
        return offset_of(self._start)

    async def _hand_out(self, position: int, raw: bytes, timestamp: int) -> None:
        async with self._order:
            if self.head is not None and position <= self.head:
                return  # the old subscription's last entry, delivered again by the new one
            self.head = position
            joined = tuple(self._joined)
            # Decoded once for all of them when several read it (an entry that does not
            # decode goes to each as it came: each reports it as its own reader would).
            entry = (decoded(raw) or raw) if len(joined) > 1 else raw
            # Readers joining from here on hold this position already (see _catch_up).
            for reader in joined:
                await reader.offer(position, entry, timestamp)

    async def _catch_up(self, reader: LogReader, position: int, raw: bytes, timestamp: int) -> None:
        await reader.offer(position, raw, timestamp)
        # No await between this check and joining: every position after the head is
        # still to be handed out, and this reader will get it.
        if self.head is not None and position >= self.head and reader in self._catching_up:
            subscription = self._catching_up.pop(reader)
            self._close_later(subscription)
            self._join(reader)
            log.info("shared_log_joined", reader=reader.name, position=position)

    def _join(self, reader: LogReader) -> None:
        self._joined.append(reader)
        reader.source = self

    def _close_later(self, subscription: LogSubscription) -> None:
        closing = subscription.close()
        if closing is None:
            return
        task = asyncio.get_running_loop().create_task(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
