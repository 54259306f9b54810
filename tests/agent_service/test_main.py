"""The process entry point starts routing, serves, and stops on the stop event."""

import asyncio

from agent_service.main import main
from relaydesk.bus import Bus, RequestTimeout
from relaydesk.health import Health
from relaydesk.settings import Settings
from tests.agent_service.helpers import Desk


async def serving(desk: Desk, timeout: float = 15.0) -> None:
    """Until the service declares its queues, requests are unroutable: ask until one is answered."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await desk.rpc.query("agent", "agents.status", {"tenant": desk.tenant}, timeout=0.5)
            return
        except RequestTimeout:
            if asyncio.get_running_loop().time() > deadline:
                raise


async def test_main_serves_commands_until_stopped(settings: Settings, bus: Bus) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(main(settings, stop, Health("agent", settings)))
    desk = Desk(bus)
    try:
        await serving(desk)
        reply = await desk.online("a1")
        assert reply.ok and len(reply.event_ids) == 1
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
