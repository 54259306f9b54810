"""``close_quietly`` cancelled midway (a service stopped during its start) ends without an
unread cancellation: it printed "_GatheringFuture exception was never retrieved" with a
traceback in the agent's log when `relaydesk up` stopped early."""

import asyncio
import gc
from typing import Any

from relaydesk.bus.endpoint import close_quietly


class HangingConnection:
    """A connection whose Close handshake never gets its answer."""

    def __init__(self, closing: asyncio.Event) -> None:
        self._closing = closing

    async def close(self) -> None:
        self._closing.set()
        await asyncio.Event().wait()


class PooledClient:
    """The shape close_quietly reads of an rstream consumer: its pool of connections."""

    def __init__(self, connections: list[HangingConnection]) -> None:
        self._pool = type("Pool", (), {"_clients": {"node": connections}})()


async def test_a_close_cancelled_midway_leaves_nothing_unread() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        closing = asyncio.Event()
        client = PooledClient([HangingConnection(closing), HangingConnection(asyncio.Event())])
        task = asyncio.create_task(close_quietly(client, timeout=60))  # type: ignore[arg-type]
        await closing.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        del task
        await asyncio.sleep(0)  # one loop turn (not a timed wait): the gather's done callbacks
        gc.collect()  # an unread future is reported when it is collected
    finally:
        loop.set_exception_handler(previous)
    assert [c["message"] for c in reported] == []
