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
ACK_EVERY = 200  # deliveries per ack (bounded by half the prefetch)
ACK_IDLE_S = 0.2  # ack what is pending after this much quiet


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
        self._pending_ack: AbstractIncomingMessage | None = None
        self._unacked = 0

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
        self._pending_ack, self._unacked = None, 0
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
        """Yield lists of events in log order.

        Acks are batched: a stream ack only returns credit (positions are ours to track), so
        the reader acks every ``ACK_EVERY`` deliveries or after ``ACK_IDLE_S`` of quiet
        instead of once per batch — at a few events per batch that was one socket write
        per event in every consumer. ``idle_timeout`` ends iteration when no event arrives
        for that many seconds (used by replay to detect the end of the log).
        """
        loop = asyncio.get_running_loop()
        deadline = None if idle_timeout is None else loop.time() + idle_timeout
        while True:
            wait = None if deadline is None else max(0.0, deadline - loop.time())
            if self._pending_ack is not None:
                wait = ACK_IDLE_S if wait is None else min(wait, ACK_IDLE_S)
            try:
                first = await asyncio.wait_for(self._inbox.get(), wait)
            except TimeoutError:
                if self._pending_ack is not None:
                    await self._flush_ack()
                    continue
                return
            raw = [first]
            while len(raw) < max_batch and not self._inbox.empty():
                raw.append(self._inbox.get_nowait())
            batch = [event for message in raw if (event := await self._decode(message)) is not None]
            if batch:
                yield batch
            deadline = None if idle_timeout is None else loop.time() + idle_timeout
            self._pending_ack = raw[-1]
            self._unacked += len(raw)
            if self._unacked >= min(ACK_EVERY, self._prefetch // 2 or 1):
                await self._flush_ack()

    async def _flush_ack(self) -> None:
        message, self._pending_ack, self._unacked = self._pending_ack, None, 0
        if message is not None:
            await self._ack(message)

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
