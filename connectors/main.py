"""connectors process (skeleton: connects, declares its queues, reports ready)."""

import asyncio

from relaydesk.bus import Bus
from relaydesk.bus.topology import declare_query_queue
from relaydesk.runtime import announce_ready
from relaydesk.settings import Settings

SERVICE = "connectors"


async def main(settings: Settings, stop: asyncio.Event) -> None:
    bus = await Bus(settings.amqp_url, service=SERVICE).connect()
    channel = await bus.channel()
    await declare_query_queue(channel, SERVICE)
    announce_ready(SERVICE)
    await stop.wait()
    await bus.close()
