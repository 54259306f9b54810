"""Process entry helpers: event loop choice, signal handling, readiness line.

Every service prints the structured log event ``service_ready`` once it serves;
``relaydesk up`` waits for that line from each child.
"""

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog

from relaydesk.logging import configure_logging
from relaydesk.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

ServiceMain = Callable[[Settings, asyncio.Event], Awaitable[None]]


def announce_ready(service: str, **fields: object) -> None:
    log.info("service_ready", service=service, **fields)


def run_service(name: str, main: ServiceMain, settings: Settings | None = None) -> None:
    """Run ``main(settings, stop)`` on uvloop until SIGINT/SIGTERM sets ``stop``."""
    settings = settings or Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, service=name)

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(settings, stop)
        log.info("service_stopped", service=name)

    run_loop(runner())


def run_loop(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on uvloop where it is installed, else on asyncio's own loop.

    Only the import is guarded: an ImportError raised while ``work`` runs propagates.
    """
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not installed on Windows)
        return asyncio.run(work)
    return uvloop.run(work)
