"""Closing a stream client that is itself cancelled leaves nothing behind to be reported.

A service asked to stop while it starts cancels its start, which may be closing a reader's
connections at that moment; the close's gathered future must not end up an "exception was
never retrieved" error in the logs of a clean stop.
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
