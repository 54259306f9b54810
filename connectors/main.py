"""connectors process: wraps :class:`ConnectorsService` until asked to stop."""

import asyncio

from connectors.service import SERVICE, ConnectorsService
from relaydesk.runtime import announce_ready
from relaydesk.settings import Settings


async def main(settings: Settings, stop: asyncio.Event) -> None:
    service = ConnectorsService(settings)
    await service.start()
    announce_ready(SERVICE, port=service.port)
    try:
        await stop.wait()
    finally:
        await service.stop()
