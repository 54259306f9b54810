"""history_service process: archive + read models + queries."""

import asyncio

from history_service.retention_runner import RetentionRunner
from history_service.service import HistoryService
from relaydesk.health import Health
from relaydesk.settings import Settings

SERVICE = "history"


async def main(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    service = HistoryService(settings)
    await service.start()
    service.watch(health.readiness)
    retention = RetentionRunner(settings)
    await retention.start()
    health.serving()
    await stop.wait()
    await retention.stop()
    await service.stop()
