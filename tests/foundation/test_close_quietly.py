"""Closing a stream client that is itself cancelled leaves nothing behind to be reported.

A service asked to stop while it starts cancels its start, which may be closing a reader's
connections at that moment; the close's gathered future must not end up an "exception was
never retrieved" error in the logs of a clean stop. And the cancel is not lost: rstream's own
close swallows a cancel that comes while it waits for the broker's answer.
"""

import asyncio
import gc

from relaydesk.bus.endpoint import close_quietly


class SlowConnection:
    def __init__(self) -> None:
        self.closing = asyncio.Event()

    async def close(self) -> None:
        self.closing.set()
        await asyncio.Event().wait()  # a broker that never answers the Close


class Pool:
    def __init__(self, connections: list[SlowConnection]) -> None:
        self._clients = {"data": connections}


class Client:
    def __init__(self, connections: list[SlowConnection]) -> None:
        self._pool = Pool(connections)


def test_a_close_cancelled_midway_reports_nothing_unretrieved() -> None:
    reported: list[str] = []

    async def cancel_a_close() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: reported.append(str(context.get("message")))
        )
        connections = [SlowConnection(), SlowConnection()]
        closing = asyncio.create_task(close_quietly(Client(connections), timeout=60))
        await asyncio.gather(*(c.closing.wait() for c in connections))
        closing.cancel()
        await asyncio.gather(closing, return_exceptions=True)

    # The unretrieved future is reported when it is collected, which may be as late as
    # the loop's end: the check comes after the loop is done and the heap collected.
    with asyncio.Runner() as runner:
        runner.run(cancel_a_close())
        gc.collect()
    gc.collect()
    assert reported == []


class SwallowingConnection:
    """Closes as rstream's ``Client.close()`` (rstream 1.1) does: its Close request is awaited
    inside ``except BaseException`` (logged, then on with the teardown), so a cancel that
    comes meanwhile is swallowed there."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.torn_down = False

    async def close(self) -> None:
        self.asked.set()
        try:
            await asyncio.Event().wait()  # the broker's answer to the Close, not come yet
        except BaseException:  # noqa: BLE001 - what rstream does, on purpose here
            pass
        await asyncio.sleep(0)  # rstream pauses, stops its listener, closes the socket
        self.torn_down = True


async def _cancel_midway(client: object, connections: list[SwallowingConnection]) -> asyncio.Task:
    closing = asyncio.create_task(close_quietly(client, timeout=60))  # type: ignore[arg-type]
    await asyncio.gather(*(c.asked.wait() for c in connections))
    closing.cancel()
    await asyncio.gather(closing, return_exceptions=True)
    return closing


async def test_a_cancel_that_rstream_swallows_still_cancels_the_closer() -> None:
    """Each connection closes in a task of its own under ``asyncio.gather``: the gather raises
    the cancel once they are done, whatever each one did with it, after they tore down."""
    connections = [SwallowingConnection(), SwallowingConnection()]
    closing = await _cancel_midway(Client(connections), connections)  # type: ignore[arg-type]
    assert closing.cancelled()
    assert all(c.torn_down for c in connections)


async def test_a_cancel_that_a_client_of_another_shape_swallows_still_cancels_the_closer() -> None:
    """A client closed its own way goes through ``wait_for``, which raises the cancel once the
    close it cancelled is done, whatever the close did with it."""
    client = SwallowingConnection()
    closing = await _cancel_midway(client, [client])
    assert closing.cancelled()
    assert client.torn_down
