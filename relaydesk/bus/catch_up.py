"""Fold the log up to "now" before serving: publish a marker, read until it comes back."""

import os
from collections.abc import Awaitable, Callable

from contracts.envelope import Actor, Envelope, LoggedEvent
from contracts.events.system import SYSTEM_TENANT, LogMarker
from relaydesk.bus.connection import Bus
from relaydesk.bus.log_reader import LogReader

BatchHandler = Callable[[list[LoggedEvent]], Awaitable[None]]


def marker_event(service: str) -> Envelope:
    return Envelope(
        type=LogMarker.TYPE,
        tenant=SYSTEM_TENANT,
        stream=f"service:{service}",
        actor=Actor(kind="system", id=service),
        data={"service": service, "nonce": os.urandom(8).hex()},
    )


async def catch_up(bus: Bus, reader: LogReader, apply: BatchHandler, *, service: str) -> int:
    """Apply every event before our marker (the marker itself included) and return its position.

    The reader keeps going afterwards: call ``reader.batches()`` again for live events.
    """
    marker = marker_event(service)
    await bus.publish(marker)
    async for batch in reader.batches():
        await apply(batch)
        for event in batch:
            if event.envelope.id == marker.id:
                return event.position
    raise RuntimeError("log reader ended before the marker arrived")
