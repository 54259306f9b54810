"""gateway process (skeleton: serves /healthz until the websocket gateway lands)."""

import asyncio

import uvicorn
from fastapi import FastAPI

from relaydesk.runtime import announce_ready
from relaydesk.settings import Settings

SERVICE = "gateway"


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="relaydesk gateway")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def main(settings: Settings, stop: asyncio.Event) -> None:
    config = uvicorn.Config(create_app(settings), host=settings.gateway_host, port=settings.gateway_port, log_config=None, ws_max_size=settings.ws_max_frame_bytes)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    announce_ready(SERVICE, url=settings.gateway_url())
    await stop.wait()
    server.should_exit = True
    await task
