"""gateway process: uvicorn serving :func:`gateway.app.create_app`."""

import asyncio
import gc

import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.deps import GatewayDeps
from gateway.server import server_config
from relaydesk.health import CannotListen, Health, QuietServer, serve_started
from relaydesk.settings import Settings

SERVICE = "gateway"


def server_for(settings: Settings, app: FastAPI | None = None) -> uvicorn.Server:
    return QuietServer(server_config(settings, app or create_app(settings)))


async def main(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    app = create_app(settings)
    server = server_for(settings, app)
    try:
        task = await serve_started(server)
    except CannotListen as exc:
        raise exc.as_configuration("RELAYDESK_GATEWAY") from None
    # What exists now (modules, the app, its routes, the caches' first entries) lives as
    # long as the process: frozen, the collector's full passes no longer walk it.
    gc.freeze()
    deps: GatewayDeps = app.state.deps
    health.readiness = deps.readiness  # one set of checks: the public /readyz asks them too
    health.serving(url=settings.gateway_url())
    await stop.wait()
    server.should_exit = True
    await task
