"""billing_service process: the billing ledger folded from the log, period close, invoices."""

import asyncio

from billing_service.service import BillingService
from relaydesk.health import Health
from relaydesk.settings import Settings

SERVICE = "billing"


async def main(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    service = BillingService(settings)
    await service.start()
    service.watch(health.readiness)
    health.serving()
    await stop.wait()
    await service.stop()
