"""agent_service process: routing (``agent`` queue) and, when present, administration (``admin``)."""

import asyncio

from agent_service.service import AgentService
from relaydesk.runtime import announce_ready
from relaydesk.settings import Settings

SERVICE = "agent"


def services(settings: Settings) -> list:
    """Routing always; the admin service when its package is installed."""
    found: list = [AgentService(settings)]
    try:
        from agent_service.admin.service import AdminService
    except ImportError:
        return found
    return [AdminService(settings), *found]  # admin first: routing folds what admin publishes


async def main(settings: Settings, stop: asyncio.Event) -> None:
    running = services(settings)
    for service in running:
        await service.start()
    announce_ready(SERVICE)
    await stop.wait()
    for service in reversed(running):
        await service.stop()
