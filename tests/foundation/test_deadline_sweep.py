"""The publisher's deadline sweep (relaydesk/bus/deadline_sweep.py), without a broker."""

import asyncio

import pytest

from relaydesk.bus.deadline_sweep import DeadlineSweep


async def test_a_future_pending_at_its_deadline_fails_and_one_settled_before_is_left() -> None:
    loop = asyncio.get_running_loop()
    sweep = DeadlineSweep(every_s=0.01)
    late: asyncio.Future[None] = loop.create_future()
    settled: asyncio.Future[None] = loop.create_future()
    later: asyncio.Future[None] = loop.create_future()
    sweep.watch(loop.time() + 0.03, [late, settled])
    sweep.watch(loop.time() + 60, [later])
    settled.set_result(None)

    with pytest.raises(TimeoutError):
        await late
    assert settled.result() is None
    assert not later.done()  # its deadline is a minute away
    assert len(sweep) == 1  # the failed and the settled ones are no longer watched
    sweep.close()
    assert not later.done()  # closing forgets, it does not fail


async def test_one_timer_serves_every_watch_and_stops_once_nothing_is_watched() -> None:
    loop = asyncio.get_running_loop()
    sweep = DeadlineSweep(every_s=0.01)
    answered: asyncio.Future[None] = loop.create_future()
    late: asyncio.Future[None] = loop.create_future()
    sweep.watch(loop.time() + 60, [answered])
    timer = sweep._timer
    assert timer is not None
    sweep.watch(loop.time() + 0.02, [late])
    assert sweep._timer is timer  # no second timer while one is scheduled
    answered.set_result(None)

    with pytest.raises(TimeoutError):
        await late  # failed inside the sweep, which has finished when this resumes
    assert len(sweep) == 0
    assert sweep._timer is None  # nothing left to watch: no timer keeps the loop busy
