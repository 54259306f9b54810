"""One subscription to the log shared by a process's readers, against a real RabbitMQ.

A reader opened behind the shared subscription catches up on a subscription of its own and
hands over to the shared one; these tests check that each reader still gets every position
once, in order, across the handover, a re-open at an earlier position (routing's rebuild),
and a reader that stops reading (the slowest sets the pace, nothing is dropped).
"""

import asyncio
import itertools

import aio_pika
import pytest

from contracts import Envelope
from contracts import topology as names
from contracts.envelope import LoggedEvent
from relaydesk.bus import Bus, LogReader, log_reader
from relaydesk.bus.log_subscription import LogSubscription
from relaydesk.bus.shared_log import SharedLog
from tests.admin.helpers import eventually
from tests.foundation.test_bus import message_event, read_n


def ids(events: list[LoggedEvent]) -> list[str]:
    return [event.envelope.id for event in events]


def in_order_once(events: list[LoggedEvent]) -> bool:
    positions = [event.position for event in events]
    return all(a < b for a, b in itertools.pairwise(positions))


async def append(bus: Bus, events: list[Envelope], per_batch: int = 20) -> None:
    for start in range(0, len(events), per_batch):
        await bus.publish_many(events[start : start + per_batch])


async def test_a_reader_opened_behind_catches_up_and_joins_without_gap_or_repeat(
    bus: Bus,
) -> None:
    shared = SharedLog(bus.stream_endpoint, service="test")
    sent = [message_event(i) for i in range(600)]
    await bus.publish_many(sent[:200])
    first = await shared.reader(bus, start="first", name="first").open()
    early = await read_n(first, 200)
    # Appends go on while the second reader catches up from far behind the shared head.
    appending = asyncio.create_task(append(bus, sent[200:]))
    second = await shared.reader(bus, start=early[50].position, name="second").open()
    got = await read_n(second, 550)
    await appending
    rest = await read_n(first, 400)

    assert ids(got) == [e.id for e in sent[50:]] and in_order_once(got)
    assert ids(early + rest) == [e.id for e in sent] and in_order_once(early + rest)
    assert shared.joined(second)  # handed over: one subscription serves both now
    await second.close()
    await first.close()
    await shared.close()


async def test_a_reader_reopened_at_an_earlier_position_reads_from_there_and_joins_again(
    bus: Bus,
) -> None:
    """Routing's rebuild: it closes its reader and opens one at its snapshot's position."""
    shared = SharedLog(bus.stream_endpoint, service="test")
    sent = [message_event(i) for i in range(150)]
    await bus.publish_many(sent[:100])
    admin = await shared.reader(bus, start="first", name="admin").open()
    history = await read_n(admin, 100)
    routing = await shared.reader(bus, start=history[80].position, name="routing").open()
    assert ids(await read_n(routing, 20)) == [e.id for e in sent[80:100]]
    await eventually(lambda: shared.joined(routing), what="routing joining the shared head")
    await routing.close()

    rebuilt = await shared.reader(bus, start=history[10].position, name="routing").open()
    appending = asyncio.create_task(append(bus, sent[100:], per_batch=5))
    got = await read_n(rebuilt, 140)
    await appending
    assert ids(got) == [e.id for e in sent[10:]] and in_order_once(got)
    assert shared.joined(rebuilt)
    assert ids(await read_n(admin, 50)) == [e.id for e in sent[100:]]
    await rebuilt.close()
    await admin.close()
    await shared.close()


async def test_a_reader_that_stops_reading_holds_the_others_back_and_nothing_is_dropped(
    bus: Bus,
) -> None:
    shared = SharedLog(bus.stream_endpoint, service="test")
    sent = [message_event(i) for i in range(100)]
    await bus.publish_many(sent)
    async with LogReader(bus, start="first", name="positions") as plain:
        positions = [event.position for event in await read_n(plain, 100)]
    slow = await shared.reader(bus, start="first", prefetch=5, name="slow").open()
    # The slow reader holds 5 and the shared subscription waits with the sixth in hand.
    await eventually(lambda: shared.head == positions[5], what="the slow reader's inbox full")
    fast = await shared.reader(bus, start=positions[0], name="fast").open()
    got: list[LoggedEvent] = []

    async def collect(reader: LogReader, into: list[LoggedEvent]) -> None:
        async for event in reader.events():
            into.append(event)

    collecting = asyncio.create_task(collect(fast, got))
    # fast catches up to the shared head (the slow reader's 5, and the sixth in hand) and
    # joins; then the shared subscription waits for room in the slow reader's inbox.
    await eventually(lambda: shared.joined(fast) and len(got) == 6, what="fast joined")
    assert shared.head == positions[5] and slow.buffered == 5

    read_slowly = await read_n(slow, 100)
    await eventually(lambda: len(got) == 100, what="fast reading on")
    collecting.cancel()
    assert ids(read_slowly) == ids(got) == [e.id for e in sent]
    assert in_order_once(read_slowly) and in_order_once(got)
    await fast.close()
    await slow.close()
    await shared.close()


async def test_readers_opened_at_the_tail_both_read_what_is_appended_after(bus: Bus) -> None:
    """The agent process at rest: both readers attached at the end, events arriving live."""
    shared = SharedLog(bus.stream_endpoint, service="test")
    first = await shared.reader(bus, start="next", name="first").open()
    second = await shared.reader(bus, start="next", name="second").open()
    sent = [message_event(i) for i in range(30)]
    appending = asyncio.create_task(append(bus, sent, per_batch=3))
    got_first, got_second = await asyncio.gather(read_n(first, 30), read_n(second, 30))
    await appending
    assert ids(got_first) == ids(got_second) == [e.id for e in sent]
    await eventually(lambda: shared.joined(second), what="the second reader joining")
    await second.close()
    await first.close()
    await shared.close()


async def test_joined_readers_share_one_decode_and_each_reports_a_poison_entry(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent process's two readers: an entry is decoded once for both (it was decoded
    by each), and one that does not decode is still each reader's own poison."""
    shared = SharedLog(bus.stream_endpoint, service="test")
    first = await shared.reader(bus, start="next", name="first").open()
    second = await shared.reader(bus, start="next", name="second").open()
    for n in range(100, 200):  # until the second's own subscription has handed over
        await bus.publish(message_event(n))
        await asyncio.gather(read_n(first, 1), read_n(second, 1))
        if shared.joined(second):
            break
    assert shared.joined(second)
    decodes: list[bytes] = []
    real = log_reader.decode_envelope

    def counted(body: bytes) -> Envelope:
        decodes.append(body)
        return real(body)

    monkeypatch.setattr(log_reader, "decode_envelope", counted)
    sent = [message_event(i) for i in range(10)]
    await append(bus, sent[:5])
    channel = await bus.channel(confirms=True)
    exchange = await channel.get_exchange(names.EVENTS_EXCHANGE)
    await exchange.publish(aio_pika.Message(body=b"{not json"), routing_key="acme.garbage")
    await append(bus, sent[5:])

    got_first, got_second = await asyncio.gather(read_n(first, 10), read_n(second, 10))
    assert ids(got_first) == ids(got_second) == [e.id for e in sent]
    assert [e.position for e in got_first] == [e.position for e in got_second]
    # Once per event. The poison entry: tried once for both, then by each reader, whose own
    # to report it is (a dead letter from each, as two readers of their own sent).
    assert len(decodes) == 10 + 1 + 2
    assert (first.poison_count, second.poison_count) == (1, 1)
    await second.close()
    await first.close()
    await shared.close()


async def test_a_reader_with_a_handler_hands_each_event_over_as_it_arrives(bus: Bus) -> None:
    """The gateway's tail: no inbox and no consuming task between the broker and its fan-out."""
    handed: list[LoggedEvent] = []
    queued_meanwhile: list[int] = []
    reader: LogReader | None = None

    def handle(event: LoggedEvent) -> None:
        handed.append(event)
        assert reader is not None
        queued_meanwhile.append(reader.buffered)

    chunks_done: list[int] = []  # events handed over when each chunk was done
    reader = await LogReader(
        bus,
        start="next",
        name="handled",
        handle=handle,
        handled_chunk=lambda: chunks_done.append(len(handed)),
    ).open()
    sent = [message_event(i) for i in range(120)]
    await append(bus, sent)
    await eventually(
        lambda: chunks_done and chunks_done[-1] == len(sent),
        timeout=10,
        what="every event handed over, and its chunk done",
    )
    assert chunks_done == sorted(chunks_done)  # each after its chunk's events
    assert ids(handed) == [e.id for e in sent] and in_order_once(handed)
    assert set(queued_meanwhile) == {0}  # nothing waited in the inbox for a consumer
    assert reader.last_position == handed[-1].position and reader.lag_s() == 0.0
    await reader.close()


async def test_a_reader_that_catches_up_before_its_open_returns_is_open_on_the_shared_one(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader just behind the head may reach it while its own subscription's open is still
    returning: the handover closes that subscription, which is not the reader closed (seen
    once an open's subscribe ran in a task of its own: its caller is back a turn later).
    Here the catch-up's open returns only once the handover has closed it."""
    shared = SharedLog(bus.stream_endpoint, service="test")
    sent = [message_event(i) for i in range(5)]
    await bus.publish_many(sent)
    first = await shared.reader(bus, start="first", name="first").open()
    early = await read_n(first, 5)
    subscribe = LogSubscription._open_with_retry

    async def returns_after_the_handover(subscription: LogSubscription) -> None:
        await subscribe(subscription)
        await eventually(lambda: not subscription.subscribed, what="the handover")

    monkeypatch.setattr(LogSubscription, "_open_with_retry", returns_after_the_handover)
    second = await shared.reader(bus, start=early[3].position, name="second").open()
    monkeypatch.undo()
    assert shared.joined(second)
    more = [message_event(i) for i in range(5, 8)]
    await bus.publish_many(more)
    assert ids(await read_n(second, 5)) == [e.id for e in sent[3:] + more]
    await second.close()
    await first.close()
    await shared.close()
