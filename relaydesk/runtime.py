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

from relaydesk.dependencies import Misconfigured, wait_for_dependencies
from relaydesk.health import Health
from relaydesk.keys import SERVICE_SECRETS, refusal
from relaydesk.logging import configure_logging
from relaydesk.memory_snapshots import dump_on_signal
from relaydesk.settings import ConfigurationError, Settings, load_settings
from relaydesk.stalls import StallProbe, collect_young_less_often, freeze_start_up
from relaydesk.tracing import configure_tracing

log = structlog.get_logger(__name__)

T = TypeVar("T")

# A setting or secret a service cannot start with: the exit code of every relaydesk command's
# usage and configuration errors (README "Exit codes"). Retrying cannot help, so a supervisor
# should not (systemd: RestartPreventExitStatus=2).
EXIT_CONFIG = 2

ServiceMain = Callable[[Settings, asyncio.Event, Health], Coroutine[Any, Any, None]]


def run_service(name: str, main: ServiceMain, settings: Settings | None = None) -> None:
    """Run ``main(settings, stop, health)`` on uvloop until SIGINT/SIGTERM sets ``stop``.

    The health server listens before ``main`` starts (``/readyz`` says ``starting``) and
    until it has returned.

    Before ``main`` it waits for the broker (and the store) to answer, with backoff
    (relaydesk/dependencies.py); ``/readyz`` says what it waits for meanwhile.

    A setting that cannot be read, a secret the service needs that is missing or weak, or a
    broker or store refusing its credentials or vhost ends the process before anything
    starts: one line on stderr naming it, exit code 2 (``EXIT_CONFIG``), no traceback.
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
        health = service_health(name, settings)
        await health.start()
        probe = StallProbe(name)
        probe.start()

        async def start_when_reachable() -> None:
            # Until the broker (and store) answer: a slow broker is waited for, not a crash.
            await wait_for_dependencies(name, settings, health.waiting)
            await main(settings, stop, health)

        running = asyncio.create_task(start_when_reachable())
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
            probe.stop()
            await health.stop()
        log.info("service_stopped", service=name)

    try:
        run_loop(runner())
    except Misconfigured as exc:  # what waiting cannot mend: bad credentials, a missing vhost
        _refuse(f"relaydesk {name}: {exc}")


def service_health(name: str, settings: Settings) -> Health:
    """The health server of a service process. Once the service serves, what the process
    built to start is frozen out of full collections, and young collections run less often
    (relaydesk/stalls.py)."""
    return Health(name, settings, on_serving=_serving)


def _serving() -> None:
    freeze_start_up()
    collect_young_less_often()


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
