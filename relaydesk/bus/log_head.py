"""The log's newest position at this moment, found without writing to the log."""

from relaydesk.bus.connection import Bus
from relaydesk.bus.log_reader import LogReader


async def log_head(bus: Bus, *, empty_after_s: float = 2.0) -> int | None:
    """The position of the newest entry in the log now, or None when it holds none.

    A subscription at the stream's ``last`` offset is sent the last chunk first, whole: its
    newest entry is the head at the moment of subscribing (entries appended later come
    after it). RabbitMQ 3.10 has no stream-statistics command, and a marker published and
    read back (``catch_up``) would write to the log that a reader such as ``relaydesk
    replay`` must only read. An empty log sends nothing: with no entry within
    ``empty_after_s`` it is taken as empty.
    """
    async with LogReader(bus, start="last", prefetch=2000, name="head", measured=False) as reader:
        async for batch in reader.batches(max_batch=2000, idle_timeout=empty_after_s):
            return batch[-1].position
    return None
