"""Health endpoints of a service process: ``/healthz``, ``/readyz`` and ``/metrics``.

Every service process (``relaydesk gateway|agent|history|billing|connectors``) serves them
on a port of its own, ``RELAYDESK_HEALTH_PORT_BASE`` + its place in :data:`SERVICE_ORDER`
(gateway 0, agent 1, history 2, billing 3, connectors 4), bound to
``RELAYDESK_HEALTH_HOST`` (default 127.0.0.1), from the moment the process starts:

- ``GET /healthz`` — alive: the process answers. Always 200 ``{"status": "alive"}``.
- ``GET /readyz`` — ready to do its job: 200 when every check passes, else 503; the body
  names each check (``{"service", "status", "checks": {name: {"ok", "detail"}}}``). Before
  the service has started, and once it is stopping, 503 with status ``starting`` /
  ``stopping``; starting and waiting for its broker or store, the body says which
  (``waiting_for``, ``attempt``, ``detail``: relaydesk/dependencies.py); folding the log
  before it serves, how far (``catching_up``: relaydesk/bus/catch_up.py). The checks each
  service registers (:class:`Readiness`): its broker connection, its store answering a
  ping, each log reader within
  ``RELAYDESK_READY_MAX_LAG_S``, its command queue having a consumer, and for the gateway,
  routing answering a query.
- ``GET /metrics`` — Prometheus text of prometheus_client's default registry.

``relaydesk up`` polls ``/readyz`` to know a child is ready (never its log lines), and
orchestrators can use the same endpoints (docker/Kubernetes probes, docs/deployment.md).
"""

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts import topology as names
from relaydesk.bus.catch_up import CATCHING_UP
from relaydesk.bus.connection import Bus
from relaydesk.bus.log_reader import LogReader
from relaydesk.cancellation import raise_if_cancel_requested
from relaydesk.dependencies import Misconfigured
from relaydesk.settings import Settings

log = structlog.get_logger(__name__)
uvicorn_log = logging.getLogger("uvicorn.error")  # where uvicorn reports that it cannot bind

# A service's health port is RELAYDESK_HEALTH_PORT_BASE + its index here. Fixed, and
# independent of the order `relaydesk up` starts them in: operators configure probes by it.
SERVICE_ORDER = ("gateway", "agent", "history", "billing", "connectors")
CHECK_TIMEOUT_S = 2.0  # a check that has not answered by then has failed

# A check answers None when it passes, or why it does not.
Probe = Callable[[], Awaitable[str | None]]
Phase = Literal["starting", "serving", "stopping"]


def health_port(settings: Settings, service: str) -> int:
    return settings.health_port_base + SERVICE_ORDER.index(service)


def health_url(settings: Settings, service: str) -> str:
    return f"http://{settings.health_host}:{health_port(settings, service)}"


class CannotListen(Exception):
    """The server could not bind ``host:port``; ``error`` is the operating system's refusal."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        self.host, self.port, self.error = host, port, error
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        super().__init__(f"cannot listen on {host}:{port}: {reason}")

    @property
    def address_in_use(self) -> bool:
        return self.error.errno == errno.EADDRINUSE

    def as_configuration(self, prefix: str) -> Misconfigured:
        """An address a service cannot listen on is configuration (exit 2): restarting it
        would meet the same address, so a supervisor must not (relaydesk up stops at once).
        ``prefix`` names the variables (``RELAYDESK_GATEWAY`` → ``…_HOST``, ``…_PORT``)."""
        if self.address_in_use:
            return Misconfigured(
                f"{self}: another process listens there; stop it or set {prefix}_PORT"
                " to a free port"
            )
        return Misconfigured(f"{self} ({prefix}_HOST, {prefix}_PORT)")


class _BindRefusal(logging.Filter):
    """Holds back the OSError uvicorn logs when it cannot bind: it is raised instead."""

    def __init__(self) -> None:
        super().__init__()
        self.error: OSError | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, OSError):
            self.error = record.msg
            return False
        return True


class QuietServer(uvicorn.Server):
    """uvicorn without its own SIGINT/SIGTERM handlers: the runtime owns the signals
    (``relaydesk.runtime.run_service`` sets ``stop``; the service then asks uvicorn to exit).

    When it cannot bind, uvicorn logs the error and calls ``sys.exit(3)`` inside the event
    loop: the process ended in a traceback with exit code 3, which a supervisor restarts
    as a crash. Here that is :class:`CannotListen`, for the service to say in its words."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        refusal = _BindRefusal()
        uvicorn_log.addFilter(refusal)
        try:
            await super().startup(sockets=sockets)
        except SystemExit:
            if refusal.error is None:
                raise
            raise CannotListen(self.config.host, self.config.port, refusal.error) from None
        finally:
            uvicorn_log.removeFilter(refusal)


async def serve_started(server: uvicorn.Server) -> "asyncio.Task[None]":
    """Start ``server`` and return its task once it listens; raise if it could not start."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task  # raises what stopped it
            raise RuntimeError(f"could not listen on {server.config.host}:{server.config.port}")
        await asyncio.sleep(0.02)
    return task


class Readiness:
    """The named checks behind ``/readyz``; the service's parts register themselves."""

    def __init__(self, max_lag_s: float) -> None:
        self.max_lag_s = max_lag_s
        self._checks: dict[str, Probe] = {}

    def add(self, name: str, probe: Probe) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} registered twice")
        self._checks[name] = probe

    def names(self) -> list[str]:
        return list(self._checks)

    def broker(self, name: str, bus: Bus) -> None:
        async def probe() -> str | None:
            return None if bus.connected else "not connected to RabbitMQ (reconnecting)"

        self.add(f"{name}.broker", probe)

    def store(self, name: str, client: AsyncMongoClient[Any]) -> None:
        async def probe() -> str | None:
            await client.admin.command("ping")
            return None

        self.add(f"{name}.store", probe)

    def reader(self, name: str, reader: Callable[[], LogReader | None]) -> None:
        """``reader`` is a getter: a service may replace its reader (routing's rebuild)."""

        async def probe() -> str | None:
            current = reader()
            if current is None or not current.subscribed:
                return "not attached to the log (resubscribing)"
            lag = current.lag_s()
            if lag > self.max_lag_s:
                return f"{lag:.1f}s behind the log (limit {self.max_lag_s:g}s)"
            return None

        self.add(f"{name}.log_reader", probe)

    def command_queue(self, name: str, bus: Bus, service: str) -> None:
        """The broker says the service's command queue has a consumer (this process's, or a
        standby's waiting behind the single active one)."""
        queue_name = names.command_queue(service)

        async def probe() -> str | None:
            # A channel of its own: a failed passive declare closes the channel it ran on.
            channel = await bus.channel()
            try:
                queue = await channel.declare_queue(queue_name, passive=True)
                consumers = queue.declaration_result.consumer_count
            finally:
                if not channel.is_closed:
                    await channel.close()
            return None if consumers else f"nobody consumes {queue_name}"

        self.add(f"{name}.commands", probe)

    async def report(self) -> dict[str, dict[str, Any]]:
        """Every check, run at once, each bounded by ``CHECK_TIMEOUT_S``."""
        results = await asyncio.gather(*(_run(probe) for probe in self._checks.values()))
        return {
            name: {"ok": why is None, **({"detail": why} if why else {})}
            for name, why in zip(self._checks, results, strict=True)
        }


async def _run(probe: Probe) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await probe()
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the request itself is being cancelled
        # What the check awaited was cancelled under it (the broker connection closing as the
        # service stops): a "not ready", not an error escaping /readyz with a traceback.
        return "cancelled: the connection it checks is closing"
    except Exception as exc:  # noqa: BLE001 - a failing check is a "not ready", said in its detail
        return f"{type(exc).__name__}: {str(exc)[:200]}"


class Health:
    """One process's health server. ``start()`` listens; the service calls ``serving()``
    once it does its job and registers its checks on ``readiness``."""

    def __init__(
        self, service: str, settings: Settings, on_serving: Callable[[], None] | None = None
    ) -> None:
        self.service = service
        self._on_serving = on_serving
        self.settings = settings
        self.readiness = Readiness(settings.ready_max_lag_s)
        self.phase: Phase = "starting"
        # While starting: what the process waits for before it can start (its broker, its
        # store; relaydesk/dependencies.py), shown by /readyz.
        self.waiting_for: dict[str, object] | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return health_url(self.settings, self.service)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/healthz", self._healthz),
                Route("/readyz", self._readyz),
                Route("/metrics", self._metrics),
            ]
        )

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app(),
            host=self.settings.health_host,
            port=health_port(self.settings, self.service),
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = QuietServer(config)
        self._task = await serve_started(self._server)

    def waiting(self, what: str, attempt: int, why: str) -> None:
        """Starting, and ``what`` (``broker``, ``store``) did not answer attempt ``attempt``."""
        self.waiting_for = {"waiting_for": what, "attempt": attempt, "detail": why}

    def serving(self, **fields: object) -> None:
        """The service does its job now: readiness is its checks from here on.

        Not when its start was asked to stop and a library's wait lost the cancel on the
        way (relaydesk/cancellation.py): that start ends here instead of serving."""
        raise_if_cancel_requested()
        self.phase = "serving"
        self.waiting_for = None
        if self._on_serving is not None:
            self._on_serving()
        log.info("service_ready", service=self.service, health=self.url, **fields)

    async def stop(self) -> None:
        self.phase = "stopping"
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"service": self.service, "status": "alive"})

    async def _readyz(self, request: Request) -> Response:
        if self.phase != "serving":
            body: dict[str, object] = {"service": self.service, "status": self.phase}
            if self.phase == "starting" and self.waiting_for:
                body.update(self.waiting_for)
            if self.phase == "starting" and CATCHING_UP:
                # folding the log before serving: how far, so a long start shows it moves
                body["catching_up"] = {
                    name: {"position": progress.position, "head": progress.head}
                    for name, progress in CATCHING_UP.items()
                }
            return JSONResponse(body, status_code=503)
        checks = await self.readiness.report()
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse(
            {
                "service": self.service,
                "status": "ready" if ready else "not_ready",
                "checks": checks,
            },
            status_code=200 if ready else 503,
        )

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
