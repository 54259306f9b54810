"""Fold the log up to "now" before serving: publish a marker, read until it comes back.

A reader asked for positions the stream no longer holds (its retention removed them: a
start at ``first`` on a log older than 30 days, or a snapshot older than that) gets them
from history's archive first (relaydesk/archived.py), then the stream's.
"""

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from contracts.envelope import Actor, Envelope, LoggedEvent
from contracts.events.system import SYSTEM_TENANT, LogMarker
from relaydesk.archived import ArchivedLog
from relaydesk.bus.connection import Bus
from relaydesk.bus.log_head import log_head
from relaydesk.bus.log_reader import LogReader

log = structlog.get_logger(__name__)

BatchHandler = Callable[[list[LoggedEvent]], Awaitable[None]]

# A catch-up still going after this long looks up the log's head, to say how far it has to
# go: short ones (most starts) never pay for the extra subscription.
HEAD_AFTER_S = 2.0


@dataclass
class CatchUpProgress:
    """How far a start has folded the log: the last position applied, and the log's head
    when it was looked up (None until then)."""

    position: int = -1
    head: int | None = None


# This process's catch-ups under way, by service: /readyz shows them while the process
# starts (relaydesk/health.py), and `relaydesk up` waits on as long as they move on
# (tools/supervisor.py) instead of giving up on a long log at a fixed time.
CATCHING_UP: dict[str, CatchUpProgress] = {}


def marker_event(service: str) -> Envelope:
    return Envelope(
        type=LogMarker.TYPE,
        tenant=SYSTEM_TENANT,
        stream=f"service:{service}",
        actor=Actor(kind="system", id=service),
        data={"service": service, "nonce": os.urandom(8).hex()},
    )


async def catch_up(
    bus: Bus,
    reader: LogReader,
    apply: BatchHandler,
    *,
    service: str,
    archive: ArchivedLog | None = None,
) -> int:
    """Apply every event before our marker (the marker itself included) and return its position.

    With ``archive``, the positions the reader wanted that the stream no longer holds are
    applied from it first. The reader keeps going afterwards: call ``reader.batches()``
    again for live events.
    """
    progress = CATCHING_UP[service] = CatchUpProgress()
    head = asyncio.create_task(_look_up_head(bus, progress))

    async def applied(batch: list[LoggedEvent]) -> None:
        await apply(batch)
        progress.position = batch[-1].position

    try:
        marker = marker_event(service)
        await bus.publish(marker)
        wanted = first_wanted(reader)
        async for batch in reader.batches():
            if wanted is not None:
                # The stream starts its delivery at its first retained entry: positions
                # contiguous, a first entry past the one wanted means the retention removed
                # those between (or they were undecodable and dead-lettered: none archived).
                if batch[0].position > wanted:
                    await _from_archive(archive, wanted, batch[0].position, applied, service)
                wanted = None
            await applied(batch)
            for event in batch:
                if event.envelope.id == marker.id:
                    return event.position
        raise RuntimeError("log reader ended before the marker arrived")
    finally:
        head.cancel()
        # gathered, not awaited under suppress(BaseException): that would also have taken
        # a cancel of this start itself arriving meanwhile
        await asyncio.gather(head, return_exceptions=True)
        CATCHING_UP.pop(service, None)


async def _look_up_head(bus: Bus, progress: CatchUpProgress) -> None:
    await asyncio.sleep(HEAD_AFTER_S)
    try:
        progress.head = await log_head(bus)
    except Exception as exc:  # noqa: BLE001 - the head only says how far; the catch-up goes on
        log.warning("log_head_unknown", error=type(exc).__name__)


def first_wanted(reader: LogReader) -> int | None:
    """The first position ``reader`` asks for, when it asks for one (``first`` is 0)."""
    if reader.start == "first":
        return 0
    if isinstance(reader.start, int):
        return reader.start
    return None


async def _from_archive(
    archive: ArchivedLog | None, since: int, until: int, apply: BatchHandler, service: str
) -> None:
    if archive is None:
        log.error("log_positions_missing", service=service, since=since, until=until)
        return
    applied = 0
    async for batch in archive.batches(since, until):
        await apply(batch)
        applied += len(batch)
    log.info("log_read_from_archive", service=service, since=since, until=until, events=applied)
