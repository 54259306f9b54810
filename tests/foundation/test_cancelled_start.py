"""A start that is cancelled stays cancelled (relaydesk/cancellation.py).

Python 3.11's ``asyncio.wait_for`` returns the result when the cancel of its task arrives in
the same turn of the loop as that result (fixed in 3.12), and aio-pika and rstream connect
through it. A service asked to stop while it connected carried on: ``service_start_abandoned``
in its log, then ``bus_connected`` and ``service_ready`` (found stopping ``relaydesk history``
~1 s into its start). The bus's connect, the wait for dependencies and ``Health.serving``
each end a start whose cancel was lost, and so does a log reader's subscribe.
"""

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from relaydesk.bus import Bus, LogReader
from relaydesk.cancellation import raise_if_cancel_requested
from relaydesk.health import Health
from relaydesk.settings import Settings
from tests.foundation.test_stream_connect import connection_listeners

MOST_TURNS = 5_000  # far more than a connect takes on a loaded machine (~300)
HANG_S = 15  # a cancelled reader's open closes its connections in ~0.2 s, 3 s at most


async def _cancelled_as_wait_for_3_11_loses_it(then: Callable[[], object]) -> asyncio.Task:
    """A task awaiting ``wait_for`` whose result and cancel come in the same turn, then calling
    ``then``; returned once it has ended."""
    result: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def step() -> object:
        await asyncio.wait_for(result, 10)  # on 3.11 returns "connected" despite the cancel
        return then()

    task = asyncio.ensure_future(step())
    await asyncio.sleep(0)  # the step now waits in wait_for
    result.set_result("connected")
    task.cancel()
    await asyncio.wait([task])
    return task


async def test_a_cancel_that_wait_for_lost_is_raised_by_the_check() -> None:
    task = await _cancelled_as_wait_for_3_11_loses_it(lambda: raise_if_cancel_requested())
    assert task.cancelled()


async def test_a_start_whose_cancel_was_lost_never_says_it_is_serving(settings: Settings) -> None:
    health = Health("history", settings)
    task = await _cancelled_as_wait_for_3_11_loses_it(health.serving)
    assert task.cancelled()
    assert health.phase == "starting"


async def test_a_cancelled_bus_connect_never_returns_a_connected_bus(settings: Settings) -> None:
    """The real connect, cancelled after 1, 2, 3... turns of the loop until it finishes
    before the cancel: every cancel it took ends it with ``CancelledError``."""

    def connect() -> Awaitable[Bus]:
        return Bus(settings.amqp_url, service="test", stream_url=settings.stream_url).connect()

    lost = []
    for turns in range(1, MOST_TURNS):
        task = asyncio.ensure_future(connect())
        for _ in range(turns):
            await asyncio.sleep(0)
        if not task.cancel():  # finished before the cancel: every turn has been tried
            await task.result().close()
            break
        try:
            bus = await task
        except asyncio.CancelledError:
            continue
        lost.append(turns)
        await bus.close()
    else:
        pytest.fail(f"the connect took more than {MOST_TURNS} turns of the loop")
    assert lost == []


async def test_a_reader_cancelled_while_it_subscribes_stops(bus: Bus) -> None:
    """Found stopping the admin service right after a command created a webhook: the stop
    hung for ever. Each webhook subscription's worker opens a log reader of its own and reads
    its batches; a stop cancels the worker. A cancel lost by one of rstream's requests (its
    answer came in the same turn) let the subscribe finish, and the worker went on waiting
    for batches: the stop waited for it for ever. Here a worker's open and read is cancelled
    after 1, 2, 3... turns of the loop until it subscribes before the cancel: every cancel
    ends it, and one cancelled before the subscribe finished leaves no connection open."""

    async def worker(reader: LogReader) -> None:
        async with reader:
            async for _ in reader.batches():
                pass

    listening_before = connection_listeners()  # the bus's own connections
    for turns in range(1, MOST_TURNS):
        reader = LogReader(bus, start="first", name="webhook-like", measured=False)
        task = asyncio.ensure_future(worker(reader))
        for _ in range(turns):
            await asyncio.sleep(0)
        subscribed = reader.source is not None
        task.cancel()
        try:
            async with asyncio.timeout(HANG_S):
                await asyncio.gather(task, return_exceptions=True)
        except TimeoutError:
            pytest.fail(f"a reader cancelled after {turns} turns went on reading (cancel lost)")
        assert task.cancelled()
        assert not reader.subscribed
        if subscribed:  # the cancel came after the subscribe: every turn before it was tried
            break  # (an open reader's close finishes with the bus)
        left = [done for done in connection_listeners() - listening_before if not done.done()]
        assert left == [], f"cancelled after {turns} turns, a connection was left open"
    else:
        pytest.fail(f"the open took more than {MOST_TURNS} turns of the loop")
