"""A start that is cancelled stays cancelled (relaydesk/cancellation.py).

Python 3.11's ``asyncio.wait_for`` returns the result when the cancel of its task arrives in
the same turn of the loop as that result (fixed in 3.12), and aio-pika and rstream connect
through it. A service asked to stop while it connected carried on: ``service_start_abandoned``
in its log, then ``bus_connected`` and ``service_ready`` (found stopping ``relaydesk history``
~1 s into its start). The bus's connect, the wait for dependencies and ``Health.serving``
each end a start whose cancel was lost.
"""

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from relaydesk.bus import Bus
from relaydesk.cancellation import raise_if_cancel_requested
from relaydesk.health import Health
from relaydesk.settings import Settings

MOST_TURNS = 5_000  # far more than a connect takes on a loaded machine (~300)


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
