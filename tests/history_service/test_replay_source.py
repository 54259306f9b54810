"""Replay's stream source against a real RabbitMQ: where a read of a live log ends."""

import asyncio
import io
import itertools

from relaydesk.bus import Bus
from relaydesk.bus.log_head import log_head
from relaydesk.settings import Settings
from tests.foundation.test_bus import message_event
from tools.replay.sources import Progress, Slice, from_stream


async def test_a_replay_of_a_log_that_keeps_moving_ends_at_the_head_it_started_from(
    bus: Bus, settings: Settings
) -> None:
    # A busy system's log is never quiet: replay used to read until 2 s passed without an
    # event, so on a live log it never ended.
    before = [message_event(n) for n in range(50)]
    await bus.publish_many(before)
    numbers = itertools.count(1000)

    async def keep_publishing() -> None:
        while True:
            await bus.publish_many([message_event(next(numbers)) for _ in range(5)])

    publisher = asyncio.create_task(keep_publishing())
    try:
        progress = Progress("replay", out=io.StringIO())
        async with asyncio.timeout(60):  # a guard: it ends within a second or two
            replayed = [
                event
                async for event in from_stream(
                    settings.amqp_url, Slice(tenant="acme"), progress, settings.stream_url
                )
            ]
        head = await log_head(bus)
    finally:
        publisher.cancel()

    ids = [event.envelope.id for event in replayed]
    assert ids[: len(before)] == [event.id for event in before]  # all of it, in log order
    assert len(set(ids)) == len(ids)
    assert head is not None and replayed[-1].position < head  # the log went on meanwhile


async def test_the_head_of_an_empty_log_is_none_and_of_a_written_one_its_newest_entry(
    bus: Bus,
) -> None:
    assert await log_head(bus, empty_after_s=0.5) is None
    await bus.publish_many([message_event(n) for n in range(3)])
    first = await log_head(bus)
    await bus.publish(message_event(3))
    assert first is not None and await log_head(bus) == first + 1
