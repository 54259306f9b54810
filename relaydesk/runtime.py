"""Process entry helpers: event loop choice, signal handling, readiness line.

Every service prints the structured log event ``service_ready`` once it serves;
``relaydesk up`` waits for that line from each child.
"""

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import structlog

from relaydesk.keys import SERVICE_SECRETS, refusal
from relaydesk.logging import configure_logging
from relaydesk.memory_snapshots import dump_on_signal
from relaydesk.settings import ConfigurationError, Settings, load_settings
from relaydesk.tracing import configure_tracing

log = structlog.get_logger(__name__)

T = TypeVar("T")

# A setting or secret a service cannot start with: the exit code of every relaydesk command's
# usage and configuration errors (README "Exit codes"). Retrying cannot help, so a supervisor
# should not (systemd: RestartPreventExitStatus=2).
EXIT_CONFIG = 2

ServiceMain = Callable[[Settings, asyncio.Event], Awaitable[None]]


def announce_ready(service: str, **fields: object) -> None:
    log.info("service_ready", service=service, **fields)


def run_service(name: str, main: ServiceMain, settings: Settings | None = None) -> None:
    """Run ``main(settings, stop)`` on uvloop until SIGINT/SIGTERM sets ``stop``.

    A setting that cannot be read, or a secret the service needs that is missing or weak,
    ends the process before anything starts: one line on stderr naming it, exit code 2
    (``EXIT_CONFIG``), no traceback.
    """
    try:
        settings = settings or load_settings()
    except ConfigurationError as exc:
        _refuse(f"relaydesk {name}: configuration: {exc}")
    why = refusal(name, settings, SERVICE_SECRETS.get(name, ()))
    if why is not None:
        _refuse(why)
    configure_logging(level=settings.log_level, fmt=settings.log_format, service=name)
    configure_tracing(settings.otlp_endpoint, name)

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        dump_on_signal(loop, name, settings.data_dir)
        await main(settings, stop)
        log.info("service_stopped", service=name)

    run_loop(runner())


def _refuse(line: str) -> NoReturn:
    print(line, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG)


def run_loop(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on uvloop where it is installed, else on asyncio's own loop.

    Only the import is guarded: an ImportError raised while ``work`` runs propagates.
    """
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not installed on Windows)
        return asyncio.run(work)
    return uvloop.run(work)
