"""gateway process: uvicorn serving :func:`gateway.app.create_app`."""

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from gateway.app import create_app
from gateway.server import server_config
from relaydesk.runtime import announce_ready
from relaydesk.settings import Settings

SERVICE = "gateway"


class _Server(uvicorn.Server):
    """uvicorn without its own SIGINT/SIGTERM handlers: the runtime owns the signals
    (``relaydesk.runtime.run_service`` sets ``stop``; ``main`` then asks uvicorn to exit)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_for(settings: Settings) -> uvicorn.Server:
    return _Server(server_config(settings, create_app(settings)))


async def main(settings: Settings, stop: asyncio.Event) -> None:
    server = server_for(settings)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.05)
    announce_ready(SERVICE, url=settings.gateway_url())
    await stop.wait()
    server.should_exit = True
    await task
