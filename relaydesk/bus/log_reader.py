"""Reads the event log (a stream queue) from a position, in batches.

Guarantees: every event at or after ``start`` is yielded once per reader, in log order,
with its position; after a broker reconnect the reader re-attaches at the position after
the last one it yielded (never from its original start, never skipping). Bodies that are
not valid envelopes are dead-lettered with a reason and skipped, so one poison event
cannot stall a consumer. Readers store their own offset (AMQP 0-9-1 has no server-side
offset tracking) together with the state they derive.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from contracts import topology as names
from contracts.envelope import LoggedEvent
from relaydesk.bus.codec import decode_envelope
from relaydesk.bus.connection import Bus

log = structlog.get_logger(__name__)

Start = int | Literal["first", "last", "next"]


class LogReader:
    """One consumer of the log.

    Args:
        bus: a connected :class:`Bus`.
        start: a position (resume *at* it), or ``"first"`` / ``"last"`` / ``"next"``.
        prefetch: deliveries in flight; the broker needs a bound for streams.
        name: for logs and the dead-letter source header.
    """

    def __init__(self, bus: Bus, *, start: Start = "first", prefetch: int = 1000, name: str = "reader") -> None:
        self._bus = bus
        self._start = start
        self._prefetch = prefetch
        self._name = name
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self.last_position: int | None = None
        self.poison_count = 0

    async def open(self) -> "LogReader":
        self._channel = await self._bus.channel(prefetch=self._prefetch)
        self._channel.reopen_callbacks.add(self._on_reopen)  # type: ignore[attr-defined]
        await self._subscribe()
        return self

    async def _subscribe(self) -> None:
        assert self._channel is not None
        await self._channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await self._channel.get_queue(names.LOG_STREAM, ensure=True)
        offset: Start = self._start if self.last_position is None else self.last_position + 1
        self._tag = await self._queue.consume(self._inbox.put, no_ack=False, arguments={"x-stream-offset": offset}, robust=False)

    async def _on_reopen(self, *_: object) -> None:
        # Deliveries from the dead channel can no longer be acked; drop them and
        # re-attach after the last position we handed out.
        while not self._inbox.empty():
            self._inbox.get_nowait()
        log.info("log_reader_resubscribe", reader=self._name, after=self.last_position)
        await self._subscribe()

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def __aenter__(self) -> "LogReader":
        return await self.open()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def batches(self, max_batch: int = 500, idle_timeout: float | None = None) -> AsyncIterator[list[LoggedEvent]]:
        """Yield lists of events; the reader acks a batch when the caller asks for the next.

        ``idle_timeout`` ends iteration when no event arrives for that many seconds
        (used by replay to detect the end of the log).
        """
        while True:
            try:
                first = await asyncio.wait_for(self._inbox.get(), idle_timeout)
            except TimeoutError:
                return
            raw = [first]
            while len(raw) < max_batch and not self._inbox.empty():
                raw.append(self._inbox.get_nowait())
            batch = [event for message in raw if (event := await self._decode(message)) is not None]
            if batch:
                yield batch
            await self._ack(raw[-1])

    async def events(self, idle_timeout: float | None = None) -> AsyncIterator[LoggedEvent]:
        async for batch in self.batches(idle_timeout=idle_timeout):
            for event in batch:
                yield event

    async def _decode(self, message: AbstractIncomingMessage) -> LoggedEvent | None:
        position = int((message.headers or {}).get("x-stream-offset", -1))  # type: ignore[arg-type]
        if self.last_position is not None and position <= self.last_position:
            return None  # re-delivered after a reconnect: already handed out
        self.last_position = position
        try:
            return LoggedEvent(position=position, envelope=decode_envelope(message.body))
        except (ValueError, ValidationError) as exc:
            self.poison_count += 1
            await self._bus.dead_letter(message.body, reason=f"undecodable log entry at {position}: {exc}"[:500], source=self._name, headers={"position": position})
            return None

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        try:
            await message.ack(multiple=True)
        except Exception as exc:  # channel replaced during a reconnect: credit is reset anyway
            log.debug("log_ack_skipped", reader=self._name, error=type(exc).__name__)
