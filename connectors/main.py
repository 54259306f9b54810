"""connectors process: wraps :class:`ConnectorsService` until asked to stop."""

import asyncio

from connectors.service import ConnectorsService
from relaydesk.health import Health
from relaydesk.settings import Settings


async def main(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    service = ConnectorsService(settings)
    await service.start()
    service.watch(health.readiness)
    health.serving(port=service.port)
    try:
        await stop.wait()
    finally:
        await service.stop()
