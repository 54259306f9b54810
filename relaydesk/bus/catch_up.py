"""Fold the log up to "now" before serving: publish a marker, read until it comes back.

A reader asked for positions the stream no longer holds (its retention removed them: a
start at ``first`` on a log older than 30 days, or a snapshot older than that) gets them
from history's archive first (relaydesk/archived.py), then the stream's.
"""

import os
from collections.abc import Awaitable, Callable

import structlog

from contracts.envelope import Actor, Envelope, LoggedEvent
from contracts.events.system import SYSTEM_TENANT, LogMarker
from relaydesk.archived import ArchivedLog
from relaydesk.bus.connection import Bus
from relaydesk.bus.log_reader import LogReader

log = structlog.get_logger(__name__)

BatchHandler = Callable[[list[LoggedEvent]], Awaitable[None]]


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
    marker = marker_event(service)
    await bus.publish(marker)
    wanted = first_wanted(reader)
    async for batch in reader.batches():
        if wanted is not None:
            # The stream starts its delivery at its first retained entry: positions
            # contiguous, a first entry past the one wanted means the retention removed
            # those between (or they were undecodable and dead-lettered: none archived).
            if batch[0].position > wanted:
                await _from_archive(archive, wanted, batch[0].position, apply, service)
            wanted = None
        await apply(batch)
        for event in batch:
            if event.envelope.id == marker.id:
                return event.position
    raise RuntimeError("log reader ended before the marker arrived")


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
