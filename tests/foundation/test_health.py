"""The health endpoints' checks (relaydesk/health.py) and `relaydesk up`'s restart policy.

The checks against a real broker; the endpoints through their ASGI app; the policy pure.
"""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from contracts import Actor, Envelope
from contracts.replies import CommandReply
from relaydesk import health
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.rpc import serve_commands
from relaydesk.bus.topology import declare_command_queue
from relaydesk.health import Health, Readiness
from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tools.supervision import RestartPolicy, describe_exit
from tools.supervisor import StartProgress


def marker(n: int) -> Envelope:
    return Envelope(
        type="system.marker",
        tenant="_system",
        stream="service:test",
        actor=Actor(kind="system", id="test"),
        data={"service": "test", "nonce": f"{n:016x}"},
    )


async def test_a_reader_lags_while_it_holds_events_and_not_once_it_has_done_them(
    bus: Bus,
) -> None:
    readiness = Readiness(max_lag_s=0.3)
    async with LogReader(bus, start="next", name="lagging") as reader:
        readiness.reader("t", lambda: reader)
        assert (await readiness.report())["t.log_reader"] == {"ok": True}  # nothing held
        await bus.publish_many([marker(1), marker(2)])
        # Received and not taken: the reader falls behind as time passes.
        await eventually(lambda: reader.lag_s() > 0.3, timeout=10, what="the lag to grow")
        report = (await readiness.report())["t.log_reader"]
        assert not report["ok"] and "behind the log" in report["detail"]
        batches = reader.batches(idle_timeout=0.2)
        await anext(batches)
        # Taken, and still being worked on: still behind.
        assert reader.lag_s() > 0.3
        # The caller comes back for more and nothing else is held: caught up.
        with pytest.raises(StopAsyncIteration):
            await anext(batches)
        assert reader.lag_s() == 0.0
        assert (await readiness.report())["t.log_reader"] == {"ok": True}
    report = (await readiness.report())["t.log_reader"]
    assert not report["ok"] and "not attached" in report["detail"]


async def test_the_command_queue_check_needs_a_consumer(bus: Bus) -> None:
    readiness = Readiness(max_lag_s=30)
    readiness.command_queue("t", bus, "ghost")
    missing = (await readiness.report())["t.commands"]
    assert not missing["ok"] and "ghost" in missing["detail"]  # no such queue
    await declare_command_queue(await bus.channel(), "ghost")
    idle = (await readiness.report())["t.commands"]
    assert idle == {"ok": False, "detail": "nobody consumes relaydesk.commands.ghost"}

    async def decide(_: Envelope) -> CommandReply:
        return CommandReply(ok=True)

    channel = await serve_commands(bus, "ghost", decide)
    assert (await readiness.report())["t.commands"] == {"ok": True}
    await channel.close()
    readiness.broker("t", bus)
    assert (await readiness.report())["t.broker"] == {"ok": True}
    assert bus.connection is not None
    await bus.connection.close()
    broker = (await readiness.report())["t.broker"]
    assert broker == {"ok": False, "detail": "not connected to RabbitMQ (reconnecting)"}


def probe(answer: str | None) -> Callable[[], "asyncio.Future[str | None]"]:
    async def check() -> str | None:
        return answer

    return check  # type: ignore[return-value]


async def test_readyz_names_every_check_and_is_503_unless_all_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.2)
    service = Health("billing", Settings())

    async def hangs() -> str | None:
        await asyncio.Event().wait()
        return None

    async def raises() -> str | None:
        raise ConnectionError("refused")

    transport = httpx.ASGITransport(app=service.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://health") as http:
        starting = await http.get("/readyz")
        assert (starting.status_code, starting.json()["status"]) == (503, "starting")
        assert (await http.get("/healthz")).json() == {"service": "billing", "status": "alive"}
        service.readiness.add("fine", probe(None))
        service.serving()
        assert (await http.get("/readyz")).status_code == 200
        service.readiness.add("hangs", hangs)
        service.readiness.add("raises", raises)
        service.readiness.add("says_why", probe("not today"))
        answer = await http.get("/readyz")
        assert answer.status_code == 503
        assert answer.json() == {
            "service": "billing",
            "status": "not_ready",
            "checks": {
                "fine": {"ok": True},
                "hangs": {"ok": False, "detail": "no answer within 0.2s"},
                "raises": {"ok": False, "detail": "ConnectionError: refused"},
                "says_why": {"ok": False, "detail": "not today"},
            },
        }
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith(
            "text/plain"
        )
    with pytest.raises(ValueError, match="twice"):
        service.readiness.add("fine", probe(None))


def test_restart_delays_double_until_a_crash_loop() -> None:
    policy = RestartPolicy(backoff_s=0.5, backoff_max_s=3, limit=5, window_s=60)
    assert [policy.record(t) for t in (0, 1, 2, 3)] == [0.5, 1.0, 2.0, 3.0]  # capped
    assert policy.record(4) is None  # the fifth within a minute
    calm = RestartPolicy(backoff_s=0.5, backoff_max_s=30, limit=3, window_s=60)
    # Restarts a window apart never add up to a loop, and start again from the first delay.
    assert [calm.record(t) for t in (0, 61, 122, 183)] == [0.5, 0.5, 0.5, 0.5]


def test_an_exit_is_told_by_its_code_or_its_signal() -> None:
    assert describe_exit(-9) == {"signal": "SIGKILL"}
    assert describe_exit(-15) == {"signal": "SIGTERM"}
    assert describe_exit(3) == {"exit_code": 3}


def probe_awaiting(answer: "asyncio.Future[None]", waiting: asyncio.Event) -> Any:
    """A check that waits for ``answer``, as aiormq's wait for the broker's does."""

    async def probe() -> str | None:
        waiting.set()
        await answer
        return None

    return probe


async def test_a_check_whose_connection_closes_under_it_is_not_ready_not_an_error() -> None:
    """Seen from `relaydesk up` stopping: a /readyz in flight while the broker connection
    closed escaped with a CancelledError traceback in the service's log."""
    loop, waiting = asyncio.get_running_loop(), asyncio.Event()
    closing: asyncio.Future[None] = loop.create_future()
    readiness = Readiness(max_lag_s=30)
    readiness.add("t.broker", probe_awaiting(closing, waiting))
    report = asyncio.create_task(readiness.report())
    await waiting.wait()
    closing.cancel()  # the connection closes under the check
    assert (await report)["t.broker"] == {
        "ok": False,
        "detail": "cancelled: the connection it checks is closing",
    }

    # and a request that is itself cancelled still ends cancelled
    waiting.clear()
    other = Readiness(max_lag_s=30)
    other.add("t.broker", probe_awaiting(loop.create_future(), waiting))
    again = asyncio.create_task(other.report())
    await waiting.wait()
    again.cancel()
    with pytest.raises(asyncio.CancelledError):
        await again


async def test_readyz_while_starting_says_how_far_each_catch_up_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relaydesk.bus import catch_up

    monkeypatch.setattr(
        catch_up,
        "CATCHING_UP",
        {"admin": catch_up.CatchUpProgress(411_999, 660_999), "agent": catch_up.CatchUpProgress()},
    )
    monkeypatch.setattr(health, "CATCHING_UP", catch_up.CATCHING_UP)
    service = Health("agent", Settings())
    transport = httpx.ASGITransport(app=service.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://health") as http:
        answer = await http.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["catching_up"] == {
        "admin": {"position": 411_999, "head": 660_999},
        "agent": {"position": -1, "head": None},
    }


def test_up_waits_on_while_a_catch_up_moves_on_and_names_how_far() -> None:
    now = [100.0]
    progress = StartProgress(clock=lambda: now[0])
    now[0] = 190.0
    progress.seen("billing", {"billing": {"position": 10, "head": None}})
    now[0] = 300.0
    assert progress.still_for() == 110.0  # since billing last moved, not since the start
    progress.seen("billing", {"billing": {"position": 10, "head": 660_999}})
    assert progress.still_for() == 110.0  # the same position again is no progress
    progress.seen("agent", {"admin": {"position": 411_999, "head": 660_999}})
    assert progress.still_for() == 0.0
    assert progress.describe("billing") == "billing (log 11 of 661,000)"
    assert progress.describe("agent") == "agent (log admin 412,000 of 661,000)"
    assert progress.describe("gateway") == "gateway"
    # Seen on a restart from snapshots: "waiting for billing (log 0)" read as a log of nothing,
    # while billing was about to fold five events after its snapshot. Nothing folded yet and
    # no head known says nothing.
    progress.seen("connectors", {"connectors": {"position": -1, "head": None}})
    assert progress.describe("connectors") == "connectors"
