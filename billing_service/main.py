"""billing_service process: the billing ledger folded from the log, period close, invoices."""

import asyncio

from billing_service.service import BillingService
from relaydesk.runtime import announce_ready
from relaydesk.settings import Settings

SERVICE = "billing"


async def main(settings: Settings, stop: asyncio.Event) -> None:
    service = BillingService(settings)
    await service.start()
    announce_ready(SERVICE)
    await stop.wait()
    await service.stop()
