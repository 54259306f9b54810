"""Paced batches (relaydesk/bus/publish_pacing.py): from a rate on, the log publisher sends
batches at most every interval, so entries that arrive apart share a chunk; below it
nothing waits. The decision is tested on a clock of its own; the publisher on the broker."""

import asyncio
import functools

import pytest
from rstream import schema
from rstream.producer import ConfirmationStatus

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


def test_a_batch_waits_for_the_last_confirm_unless_paced() -> None:
    clock = Clock()
    pacing = BatchPacing(0.010, 400, max_unconfirmed=3, clock=clock)
    busy(pacing, clock, per_s=200, seconds=2)
    assert pacing.may_send(0)
    assert not pacing.may_send(1)  # quiet: what arrives during the confirm joins the next batch
    busy(pacing, clock, per_s=1000, seconds=1)
    assert pacing.may_send(1) and pacing.may_send(2)  # paced: the interval gathers the batch
    assert not pacing.may_send(3)  # ... with at most max_unconfirmed batches on their way


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        BatchPacing(-1, 400)
    with pytest.raises(ValueError):
        BatchPacing(0.010, 400, max_unconfirmed=0)


async def paced_publisher(bus: Bus, interval_s: float) -> StreamPublisher:
    """A started log publisher whose batches are paced at any rate."""
    publisher = StreamPublisher(
        bus.stream_endpoint,
        names.LOG_STREAM,
        name="pacing-test",
        pacing=BatchPacing(interval_s=interval_s, from_per_s=0),
    )
    await publisher.start()
    return publisher


async def publish_message(publisher: StreamPublisher, n: int) -> list[BaseException | None]:
    event = message_event(n)
    return await publisher.publish([(event.model_dump_json().encode(), event.id, None)])


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
    publisher = await paced_publisher(bus, interval_s=0.5)
    publish = functools.partial(publish_message, publisher)
    try:
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


async def test_a_paced_batch_leaves_while_the_last_one_awaits_its_confirm(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker's confirm for the first batch is held back in the client: paced, the second
    batch is in the stream all the same, after the first; both resolve once confirms come."""
    held: list[ConfirmationStatus] = []
    holding = True
    on_confirm = StreamPublisher._on_confirm

    def hold_back(self: StreamPublisher, status: ConfirmationStatus) -> None:
        if holding:
            held.append(status)
        else:
            on_confirm(self, status)

    monkeypatch.setattr(StreamPublisher, "_on_confirm", hold_back)
    publisher = await paced_publisher(bus, interval_s=0.01)
    publish = functools.partial(publish_message, publisher)
    reader = await LogReader(bus, start="first", name="pacing-test").open()
    try:
        first = asyncio.create_task(publish(0))
        (m0,) = await read_n(reader, 1)
        second = asyncio.create_task(publish(1))
        (m1,) = await read_n(reader, 1)  # sent with m0's confirm still held back
        assert not first.done() and not second.done()
        assert [m0.envelope.data["message_id"], m1.envelope.data["message_id"]] == ["m0", "m1"]
        assert m1.position > m0.position
        holding = False
        for status in held:
            on_confirm(publisher, status)
        assert await first == [None] and await second == [None]
    finally:
        await reader.close()
        await publisher.close()
