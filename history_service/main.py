"""history_service process: archive + read models + queries."""

import asyncio

from history_service.retention_runner import RetentionRunner
from history_service.service import HistoryService
from relaydesk.runtime import announce_ready
from relaydesk.settings import Settings

SERVICE = "history"


async def main(settings: Settings, stop: asyncio.Event) -> None:
    service = HistoryService(settings)
    await service.start()
    retention = RetentionRunner(settings)
    await retention.start()
    announce_ready(SERVICE)
    await stop.wait()
    await retention.stop()
    await service.stop()
