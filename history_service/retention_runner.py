"""Runs the retention job periodically inside the history process (``relaydesk history``).

Its own bus connection and store client: the job publishes its records and touches only
old, closed conversations, so it needs nothing from the archiving loop.
"""

import asyncio
import contextlib
from datetime import UTC, datetime

import structlog
from pymongo import AsyncMongoClient

from history_service.retention import Clock, RetentionJob
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from relaydesk.store import database, make_client

log = structlog.get_logger(__name__)

EVERY_S = 3600.0  # retention is counted in days: hourly is prompt enough


class RetentionRunner:
    def __init__(
        self,
        settings: Settings,
        *,
        every_s: float = EVERY_S,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._every_s = every_s
        self._clock = clock
        self._bus: Bus | None = None
        self._mongo: AsyncMongoClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._bus = await Bus.from_settings(self._settings, service="history-retention").connect()
        self._mongo = make_client(self._settings.mongo_url or "")
        job = RetentionJob(
            database(self._mongo, self._settings.mongo_db), self._bus.publish, self._clock
        )
        self._task = asyncio.create_task(self._forever(job))

    async def _forever(self, job: RetentionJob) -> None:
        while True:
            try:
                await job.run_once()
            except Exception as exc:  # noqa: BLE001 - the next round retries; every step is idempotent
                log.error("retention_failed", error=type(exc).__name__)
            await asyncio.sleep(self._every_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._bus is not None:
            await self._bus.close()
        if self._mongo is not None:
            await self._mongo.close()
