"""agent_service process: routing (``agent`` queue) and administration (``admin`` queue).

Both always start: a missing or broken module is an error at start, never a routing-only
process that silently leaves every admin command unanswered.
"""

import asyncio
from typing import Protocol

from agent_service.admin.service import AdminService
from agent_service.service import AgentService
from relaydesk.bus.shared_log import SharedLog
from relaydesk.health import Health, Readiness
from relaydesk.settings import Settings

SERVICE = "agent"


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def watch(self, readiness: Readiness) -> None: ...


def services(settings: Settings, shared_log: SharedLog | None = None) -> list[Service]:
    """Administration first: routing folds what administration publishes."""
    return [
        AdminService(settings, shared_log=shared_log),
        AgentService(settings, shared_log=shared_log),
    ]


async def main(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    # One subscription to the log for both: administration starts it after its snapshot,
    # routing catches up from its own and joins it (relaydesk/bus/shared_log.py).
    shared_log = SharedLog.of(settings, service=SERVICE)
    running = services(settings, shared_log)
    for service in running:
        await service.start()
        service.watch(health.readiness)
    health.serving()
    await stop.wait()
    for service in reversed(running):
        await service.stop()
    await shared_log.close()
