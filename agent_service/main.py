"""agent_service process: routing (``agent`` queue) and administration (``admin`` queue).

Both always start: a missing or broken module is an error at start, never a routing-only
process that silently leaves every admin command unanswered.
"""

import asyncio
from typing import Protocol

from agent_service.admin.service import AdminService
from agent_service.service import AgentService
from relaydesk.health import Health, Readiness
from relaydesk.settings import Settings

SERVICE = "agent"


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def watch(self, readiness: Readiness) -> None: ...


def services(settings: Settings) -> list[Service]:
    """Administration first: routing folds what administration publishes."""
    return [AdminService(settings), AgentService(settings)]


async def main(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    running = services(settings)
    for service in running:
        await service.start()
        service.watch(health.readiness)
    health.serving()
    await stop.wait()
    for service in reversed(running):
        await service.stop()
