"""Paced batches (relaydesk/bus/publish_pacing.py): from a rate on, the log publisher sends
batches at most every interval, so entries that arrive apart share a chunk; below it
nothing waits. The decision is tested on a clock of its own; the publisher on the broker."""

import asyncio

import pytest
from rstream import schema

from contracts import topology as names
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.log_subscription import CreditInBatches
from relaydesk.bus.publish_pacing import BatchPacing
from relaydesk.bus.stream_publisher import StreamPublisher
from tests.foundation.test_bus import message_event, read_n


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def busy(pacing: BatchPacing, clock: Clock, per_s: int, seconds: float) -> None:
    """Entries arriving at ``per_s`` for ``seconds``, one at a time."""
    for _ in range(int(per_s * seconds)):
        clock.now += 1 / per_s
        pacing.arrived(1)


def test_the_first_batch_and_a_quiet_publisher_never_wait() -> None:
    clock = Clock()
    pacing = BatchPacing(0.010, 400, clock=clock)
    pacing.arrived(1)
    assert pacing.wait_s() == 0  # nothing sent yet
    pacing.sent()
    busy(pacing, clock, per_s=200, seconds=2)
    assert pacing.rate == pytest.approx(200, rel=0.05)
    pacing.sent()
    clock.now += 0.001
    assert pacing.wait_s() == 0  # below 400 a second: at once, however recent the last batch


def test_a_busy_publisher_waits_out_the_interval_since_its_last_batch() -> None:
    clock = Clock()
    pacing = BatchPacing(0.010, 400, clock=clock)
    busy(pacing, clock, per_s=1000, seconds=1)
    pacing.sent()
    clock.now += 0.003
    assert pacing.wait_s() == pytest.approx(0.007)
    clock.now += 0.010
    assert pacing.wait_s() == 0  # the interval is over: the next batch leaves at once


def test_pacing_stops_once_the_publisher_goes_quiet() -> None:
    clock = Clock()
    pacing = BatchPacing(0.010, 400, clock=clock)
    busy(pacing, clock, per_s=1000, seconds=1)
    clock.now += 30  # a quiet half minute, then one entry
    pacing.arrived(1)
    pacing.sent()
    clock.now += 0.001
    assert pacing.rate < 400
    assert pacing.wait_s() == 0


def test_an_interval_of_zero_turns_pacing_off() -> None:
    clock = Clock()
    pacing = BatchPacing(0, 0, clock=clock)
    busy(pacing, clock, per_s=5000, seconds=1)
    pacing.sent()
    assert pacing.wait_s() == 0


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        BatchPacing(-1, 400)


async def test_entries_arriving_apart_while_paced_share_one_chunk(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unpaced, each of the five entries published 20 ms apart goes out alone (its confirm
    comes back within a few ms) and is a chunk of its own."""
    chunks: dict[int, int] = {}  # first position -> entries, for every chunk delivered
    on_deliver = CreditInBatches._on_deliver

    async def recorded(
        self: CreditInBatches, frame: schema.Deliver, *args: object, **kwargs: object
    ) -> None:
        chunks[frame.chunk_first_offset] = frame.num_entries
        await on_deliver(self, frame, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(CreditInBatches, "_on_deliver", recorded)
    publisher = StreamPublisher(
        bus.stream_endpoint,
        names.LOG_STREAM,
        name="pacing-test",
        pacing=BatchPacing(interval_s=0.5, from_per_s=0),  # paced at any rate
    )
    await publisher.start()
    try:

        async def publish(n: int) -> list[BaseException | None]:
            event = message_event(n)
            return await publisher.publish([(event.model_dump_json().encode(), event.id, None)])

        assert await publish(0) == [None]  # the first batch leaves at once
        later = []
        for n in range(1, 6):
            later.append(asyncio.create_task(publish(n)))
            await asyncio.sleep(0.02)  # spacing the arrivals, not waiting for anything
        assert await asyncio.gather(*later) == [[None]] * 5
    finally:
        await publisher.close()
    reader = await LogReader(bus, start="first", name="pacing-test").open()
    try:
        events = await read_n(reader, 6)
    finally:
        await reader.close()
    positions = {e.envelope.data["message_id"]: e.position for e in events}
    first = positions["m1"]
    assert first != positions["m0"]
    assert chunks[first] == 5  # m1..m5 in one chunk
    assert [positions[f"m{n}"] for n in range(1, 6)] == list(range(first, first + 5))
