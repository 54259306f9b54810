"""Start the real system in-process for tests: agent + history services and a gateway.

Each piece is the production class on the test's own vhost and database; the gateway
is a real uvicorn server on a free port, so clients are real websocket/HTTP clients.
"""

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn

from agent_service.main import services as agent_services
from billing_service.service import BillingService
from connectors.service import ConnectorsService
from gateway.auth.permissions import effective_permissions
from gateway.auth.tokens import AgentPrincipal, TokenService
from gateway.main import server_for
from history_service.service import HistoryService
from relaydesk.bus.shared_log import SharedLog
from relaydesk.settings import Settings
from tools.embedded import free_port


@dataclass
class RunningGateway:
    settings: Settings
    server: uvicorn.Server
    task: asyncio.Task

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.gateway_port}/ws"

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 20)


async def start_gateway(settings: Settings, port: int | None = None) -> RunningGateway:
    update: dict[str, object] = {"gateway_port": port or free_port()}
    if "agent_reconnect_window_s" not in settings.model_fields_set:
        # Agents' sockets close at the end of most flows: their lost connection is reported
        # at once, as the tests' waits and their captured output assume, not 5 s later in the
        # middle of another test (the window itself: tests/gateway/test_presence.py).
        update["agent_reconnect_window_s"] = 0.0
    settings = settings.model_copy(update=update)
    server = server_for(settings)  # the production server: same limits, proxies, timeouts
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("gateway exited during start")
            await asyncio.sleep(0.02)
    return RunningGateway(settings, server, task)


@dataclass
class RunningSystem:
    settings: Settings
    gateway: RunningGateway
    services: list[Any] = field(default_factory=list)

    def agent_token(
        self,
        tenant: str,
        agent_id: str,
        role: str = "agent",
        name: str = "",
        extra: tuple[str, ...] = (),
    ) -> str:
        principal = AgentPrincipal(
            tenant=tenant,
            agent_id=agent_id,
            role=role,
            name=name or agent_id,
            permissions=effective_permissions(role, extra),
        )
        return TokenService(self.settings).issue_access(principal)

    def visitor_token(self, tenant: str, visitor_id: str) -> str:
        return TokenService(self.settings).issue_visitor(tenant, visitor_id)


def next_month_start() -> datetime:
    """00:00 UTC on the 1st of the month after this one: billing's now for a test that needs
    the invoice of the month its usage fell in. A month is closed once it is over (a month
    under way is refused: billing_service/decider.py), as billing does on the 1st."""
    now = datetime.now(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


@contextlib.asynccontextmanager
async def running_system(
    settings: Settings,
    *,
    with_history: bool = True,
    with_agent: bool = True,
    with_billing: bool = True,
    billing_clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[RunningSystem]:
    """``with_history`` / ``with_agent`` / ``with_billing`` False leave that service out, e.g.
    for a test that runs it as its own process or with clocks of its own. ``billing_clock``:
    billing's now (e.g. :func:`next_month_start`, to close the month the test used); the
    other services keep the real one."""
    # The agent process's wiring: administration and routing read the log through one
    # shared subscription (agent_service/main.py).
    shared_log = SharedLog.of(settings, service="agent")
    services: list[Any] = agent_services(settings, shared_log) if with_agent else []
    if with_history:
        services.append(HistoryService(settings))
    if with_billing:
        clock = {"clock": billing_clock} if billing_clock is not None else {}
        services.append(BillingService(settings, **clock))
    # The services start together: each folds the log up to its own marker and serves,
    # none needs another to start (they meet on the log and over requests). Mostly round
    # trips, so together they take about as long as the slowest. The gateway comes last:
    # a client's first request must find every service serving.
    started = await asyncio.gather(
        *(service.start() for service in services), return_exceptions=True
    )
    failed = [outcome for outcome in started if isinstance(outcome, BaseException)]
    if failed:
        # stop() undoes what a start() got done, whether it finished or not
        await asyncio.gather(*(service.stop() for service in services), return_exceptions=True)
        await shared_log.close()
        raise failed[0]
    gateway = await start_gateway(settings)
    try:
        yield RunningSystem(gateway.settings, gateway, services)
    finally:
        await gateway.stop()
        # Each service closes its own connections; together they take as long as the slowest.
        await stopped_within(STOP_S, [service.stop() for service in reversed(services)])
        await stopped_within(STOP_S, [shared_log.close()])


STOP_S = 60.0  # far above a stop's few seconds even on a loaded machine


async def stopped_within(seconds: float, stops: list[Any]) -> None:
    """Await the stops; one still running after ``seconds`` fails the test naming it, with
    the stack of every task left, instead of hanging until the test's timeout (a browser
    test's teardown once waited 170 s after the services' snapshots, with no trace of what
    it waited for)."""
    tasks = [asyncio.ensure_future(stop) for stop in stops]
    done, pending = await asyncio.wait(tasks, timeout=seconds)
    if pending:
        report = io.StringIO()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.print_stack(limit=12, file=report)
        for task in pending:
            task.cancel()
        raise AssertionError(
            f"{len(pending)} service stop(s) still running after {seconds:.0f} s; tasks:\n"
            + report.getvalue()
        )
    for task in done:
        task.result()  # a stop that failed fails the test, as the gather did


@contextlib.contextmanager
def history_held(system: RunningSystem) -> Iterator[asyncio.Event]:
    """History's writes stop following the log (it still answers queries, from what it has)
    until the event yielded is set, and at the latest when the block ends: a read model
    behind the log, as under load, made on purpose."""
    history = next(s for s in system.services if isinstance(s, HistoryService))
    release, apply = asyncio.Event(), history._writer.apply

    async def behind(batch: Any, **options: Any) -> None:
        await release.wait()
        await apply(batch, **options)

    history._writer.apply = behind  # type: ignore[method-assign]
    try:
        yield release
    finally:
        release.set()
        history._writer.apply = apply  # type: ignore[method-assign]


class ConnectorsRunning:
    """The connectors service for the block (``running_system`` leaves it out: most tests
    need no webhook server)."""

    def __init__(self, settings: Settings) -> None:
        self.service = ConnectorsService(settings)

    async def __aenter__(self) -> ConnectorsService:
        await self.service.start()
        return self.service

    async def __aexit__(self, *exc: object) -> None:
        await self.service.stop()
