"""Process entry helpers: event loop choice, signal handling, the health server.

Every service process serves ``/healthz``, ``/readyz`` and ``/metrics`` from its start
(relaydesk/health.py); ``main`` registers its readiness checks and calls
``health.serving()`` once it does its job (which also logs ``service_ready`` for people
reading the log; nothing waits on that line: ``relaydesk up`` polls ``/readyz``).
"""

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import structlog
from pydantic import ValidationError

from relaydesk.health import Health
from relaydesk.keys import SERVICE_SECRETS, refusal, variable
from relaydesk.logging import configure_logging
from relaydesk.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

# sysexits.h EX_CONFIG: a supervisor (systemd RestartPreventExitStatus=78) need not retry.
EXIT_CONFIG = 78

ServiceMain = Callable[[Settings, asyncio.Event, Health], Coroutine[Any, Any, None]]


def run_service(name: str, main: ServiceMain, settings: Settings | None = None) -> None:
    """Run ``main(settings, stop, health)`` on uvloop until SIGINT/SIGTERM sets ``stop``.

    The health server listens before ``main`` starts (``/readyz`` says ``starting``) and
    until it has returned.

    A setting that cannot be read, or a secret the service needs that is missing or weak,
    ends the process before anything starts: one line on stderr, exit code 78, no traceback.
    """
    try:
        settings = settings or Settings()
    except ValidationError as exc:
        fields = ", ".join(sorted({variable(str(error["loc"][0])) for error in exc.errors()}))
        _refuse(f"relaydesk {name}: invalid setting {fields} ({exc.errors()[0]['msg']})")
    why = refusal(name, settings, SERVICE_SECRETS.get(name, ()))
    if why is not None:
        _refuse(why)
    configure_logging(level=settings.log_level, fmt=settings.log_format, service=name)

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        health = Health(name, settings)
        await health.start()
        running = asyncio.create_task(main(settings, stop, health))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not running.done() and health.phase == "starting":
                # Asked to stop while still starting (a catch-up may take long): nothing is
                # served yet, so nothing to hand over; stop now instead of after the start.
                running.cancel()
                log.info("service_start_abandoned", service=name)
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            else:
                await running
        finally:
            stopping.cancel()
            await health.stop()
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
