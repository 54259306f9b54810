"""gateway process: uvicorn serving :func:`gateway.app.create_app`."""

import asyncio
import gc

import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.deps import GatewayDeps
from gateway.server import server_config
from relaydesk.dependencies import Misconfigured
from relaydesk.health import CannotListen, Health, QuietServer, serve_started
from relaydesk.settings import Settings

SERVICE = "gateway"


def server_for(settings: Settings, app: FastAPI | None = None) -> uvicorn.Server:
    return QuietServer(server_config(settings, app or create_app(settings)))


def _refusal(exc: CannotListen) -> Misconfigured:
    """An address the gateway cannot listen on is configuration (exit 2): restarting it would
    meet the same address, so a supervisor must not (relaydesk up stops at once)."""
    if exc.address_in_use:
        return Misconfigured(
            f"{exc}: another process listens there; stop it or set RELAYDESK_GATEWAY_PORT"
            " to a free port"
        )
    return Misconfigured(f"{exc} (RELAYDESK_GATEWAY_HOST, RELAYDESK_GATEWAY_PORT)")


async def main(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    app = create_app(settings)
    server = server_for(settings, app)
    try:
        task = await serve_started(server)
    except CannotListen as exc:
        raise _refusal(exc) from None
    # What exists now (modules, the app, its routes, the caches' first entries) lives as
    # long as the process: frozen, the collector's full passes no longer walk it.
    gc.freeze()
    deps: GatewayDeps = app.state.deps
    health.readiness = deps.readiness  # one set of checks: the public /readyz asks them too
    health.serving(url=settings.gateway_url())
    await stop.wait()
    server.should_exit = True
    await task
