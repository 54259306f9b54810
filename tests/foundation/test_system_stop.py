"""The in-process system's teardown (tests/system.py ``stopped_within``): a service stop
that does not end fails the test naming what it waits on, instead of hanging it."""

import asyncio

import pytest

from tests.system import stopped_within


async def test_a_stop_that_never_ends_is_reported_with_its_stack() -> None:
    async def stuck_closing_its_connection() -> None:
        await asyncio.Event().wait()

    async def quick() -> None:
        return None

    with pytest.raises(AssertionError) as failure:
        await stopped_within(0.2, [quick(), stuck_closing_its_connection()])
    assert "1 service stop(s) still running" in str(failure.value)
    assert "stuck_closing_its_connection" in str(failure.value)


async def test_stops_that_end_pass_and_a_failed_one_is_raised() -> None:
    async def failing() -> None:
        raise RuntimeError("close refused")

    await stopped_within(1, [asyncio.sleep(0)])
    with pytest.raises(RuntimeError, match="close refused"):
        await stopped_within(1, [failing()])
