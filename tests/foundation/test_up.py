"""`relaydesk up` brings the whole system up on embedded defaults, keeps it up, and leaves
nothing behind.

One `up` for the module (started at log level WARNING: readiness never depends on a log
line), on its own vhost and data directory; the tests run in order and the last one kills it.
"""

import asyncio
import itertools
import json
import os
import signal
import stat
from collections.abc import AsyncIterator

import httpx
import pytest

from relaydesk.health import SERVICE_ORDER
from tests.admin.helpers import eventually
from tests.fault.conversation import acked_more, chat, engaged, settle
from tests.fault.driver import ResilientClient
from tests.servers import RabbitVhosts
from tests.up import Up, UpSystem, supervisor_events

CHILDREN = ("store", "history", "agent", "billing", "connectors", "gateway")
PER_KILL = 8  # messages sent around each kill: 2 before it, the rest through it


@pytest.fixture(scope="module")
async def up(vhosts: RabbitVhosts, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Up]:
    vhost = vhosts.create()
    running = Up(
        vhosts.url_for(vhost),
        tmp_path_factory.mktemp("up"),
        RELAYDESK_LOG_LEVEL="WARNING",
        # Kills are what this module does; on a busy machine a start can also fail (the
        # shared broker slow to answer) and be retried: no crash loop here (it has its own
        # test, tests/foundation/test_up_failures.py).
        RELAYDESK_UP_RESTART_LIMIT="50",
        # A command or query may take longer than 5 s while children restart on a busy
        # machine (the demo workspace, the test's tenant): slow is not what is tested here.
        RELAYDESK_REQUEST_TIMEOUT_S="20",
        # `up` lowers history's and the store's priority so a customer's gateway goes first;
        # next to four test workers at normal priority that starved history's catch-up after
        # its kill past the archive wait (seen in CI's parallel phase).
        RELAYDESK_BACKGROUND_NICE="0",
        # the services take seconds to start here: `up` names those still starting meanwhile
        RELAYDESK_UP_WAITING_EVERY_S="0.5",
    ).start()
    try:
        await running.wait_up()
        yield running
    finally:
        running.stop()
        vhosts.delete(vhost)


async def test_up_prints_every_url_and_each_serves(up: Up) -> None:
    output = up.output
    for path in ("/demo", "/console", "/admin"):
        assert f"{up.base_url}{path}" in output
    for service in SERVICE_ORDER:
        assert up.health_url(service) in output, output[-3000:]
    assert "embedded MongoDB-protocol server" in output
    # Starting, it named who it was waiting for (silence looked like a hang), then stopped.
    starting, _, after = output.partition("relaydesk is up.")
    waiting = [line for line in starting.splitlines() if line.startswith("[relaydesk] waiting for")]
    assert waiting and any(service in waiting[0] for service in SERVICE_ORDER), starting[-3000:]
    assert "[relaydesk] waiting for" not in after
    async with httpx.AsyncClient(base_url=up.base_url, timeout=10) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "alive"
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
        # The printed demo sign-in works in the console, and the pages it names are served.
        demo_line = next((line for line in output.splitlines() if "Demo sign-in" in line), None)
        assert demo_line is not None, output[-3000:]
        password = demo_line.rsplit("password ", 1)[1].strip()
        login = await http.post(
            "/api/auth/login",
            json={"tenant": "demo", "email": "owner@demo.local", "password": password},
        )
        assert login.status_code == 200, login.text
        for page in ("demo", "console", "admin", "static/widget.js"):
            assert (await http.get(f"/{page}")).status_code == 200, page
    # No secret ships with the code: `up` generated the services' own, readable by us only.
    secrets_file = up.data_dir / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert set(json.loads(secrets_file.read_text())) == {
        "RELAYDESK_JWT_SECRET",
        "RELAYDESK_VISITOR_SECRET",
        "RELAYDESK_SECRETS_KEY",
        "RELAYDESK_AUDIT_SIGNING_KEY",
    }


async def test_every_service_is_alive_ready_and_measured_on_its_health_port(up: Up) -> None:
    expected = {
        "gateway": {"gateway.broker", "gateway.store", "gateway.log_reader", "routing"},
        "agent": {"agent.commands", "admin.commands", "agent.log_reader", "admin.store"},
        "history": {"history.broker", "history.store", "history.log_reader"},
        "billing": {"billing.broker", "billing.log_reader", "billing.commands"},
        "connectors": {"connectors.store", "connectors.log_reader", "connectors.commands"},
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for service in SERVICE_ORDER:
            alive = await http.get(up.health_url(service, "/healthz"))
            assert alive.status_code == 200 and alive.json()["status"] == "alive", service
            ready = await http.get(up.health_url(service))
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["service"] == service and body["status"] == "ready"
            assert expected[service] <= set(body["checks"]), (service, body)
            assert all(check["ok"] for check in body["checks"].values())
            metrics = await http.get(up.health_url(service, "/metrics"))
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")


async def test_readiness_fails_while_a_dependency_is_paused(up: Up) -> None:
    """A paused routing service: the gateway is alive but not ready (chats would fail), on
    its health port and on its public port (which used to say "ok" all along); a paused
    store: every service that uses it says so. All ready again when resumed."""
    children = up.children()
    # A fresh connection per probe, as a monitor makes: a pooled one left idle while a
    # readiness check waits can meet the server's keep-alive close ("Server disconnected
    # without sending a response", seen once in CI), which says nothing about readiness.
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=10, limits=no_reuse) as http:

        async def check(service: str, name: str) -> dict[str, object] | None:
            response = await http.get(up.health_url(service))
            body = response.json()
            failing = response.status_code == 503 and not body["checks"][name]["ok"]
            return body if failing else None

        for paused, watchers in (
            ("agent", [("gateway", "routing")]),
            (
                "store",
                [
                    ("history", "history.store"),
                    ("connectors", "connectors.store"),
                    ("agent", "admin.store"),
                    ("gateway", "gateway.store"),
                ],
            ),
        ):
            children[paused].suspend()
            try:
                for service, name in watchers:
                    body = await eventually(
                        lambda s=service, n=name: check(s, n),  # type: ignore[misc]
                        timeout=30,
                        what=f"{service} to report {name} failing while {paused} is paused",
                    )
                    assert body["status"] == "not_ready"
                    alive = await http.get(up.health_url(service, "/healthz"))
                    assert alive.status_code == 200
                if paused == "agent":  # what a load balancer or a monitor sees
                    public = await http.get(f"{up.base_url}/readyz")
                    assert public.status_code == 503, public.text
                    assert public.json()["checks"]["routing"] == {
                        "ok": False,
                        "detail": "routing (agent service) does not answer queries",
                    }
                    alive = await http.get(f"{up.base_url}/healthz")
                    assert alive.status_code == 200 and alive.json()["status"] == "alive"
            finally:
                children[paused].resume()
            for service in SERVICE_ORDER:  # everything ready again before the next test
                await eventually(
                    lambda s=service: up.ready(s, http),  # type: ignore[misc]
                    timeout=30,
                    what=f"{service} ready again after {paused} resumed",
                )

            async def public_ready() -> bool:
                answer = await http.get(f"{up.base_url}/readyz")
                return answer.status_code == 200 and answer.json()["status"] == "ready"

            await eventually(public_ready, timeout=30, what=f"public /readyz after {paused}")


def supervised(up: Up) -> list[dict[str, object]]:
    """What `up` said about its children, for a failing assertion's message."""
    return [
        e for name in ("child_exited", "child_ready") for e in supervisor_events(up.output, name)
    ]


class PacedChat:
    """The customer's side of the chat: one acked message after another, each seen by the
    agent before the next, as many as the test has allowed so far. Allowing a few more
    before a kill keeps messages flowing through it without sending thousands while a
    child restarts (the archive is then read back whole)."""

    def __init__(
        self, customer: ResilientClient, agent: ResilientClient, conversation_id: str
    ) -> None:
        self.customer, self.agent, self.conversation_id = customer, agent, conversation_id
        self.sent: list[str] = []
        self._allowed = 0
        self._more = asyncio.Condition()

    async def allow(self, more: int) -> None:
        async with self._more:
            self._allowed += more
            self._more.notify_all()

    async def run(self) -> None:
        for count in itertools.count():
            async with self._more:
                await self._more.wait_for(lambda n=count: n < self._allowed)  # type: ignore[misc]
            body = f"m-{count}"
            await chat(self.customer, self.conversation_id, [body], self.sent)
            await self.agent.wait_event("message.sent", timeout=90, body=body)


async def test_each_child_killed_while_messages_flow_is_restarted_and_nothing_is_lost(
    up: Up,
) -> None:
    system = UpSystem(up)
    async with (
        httpx.AsyncClient(base_url=up.base_url, timeout=20) as http,
        httpx.AsyncClient(timeout=10) as probe,
    ):
        customer, agent, conversation_id, owner = await engaged(system, http, [up.ws_url])
        conversation = PacedChat(customer, agent, conversation_id)
        sent = conversation.sent
        flowing = asyncio.create_task(conversation.run())

        def chatted(target: int) -> bool:
            if flowing.done():
                flowing.result()  # the chat's own failure, rather than a timeout here
            return len(sent) >= target

        try:
            for name in CHILDREN:
                before = {child: process.pid for child, process in up.children().items()}
                exited = len(supervisor_events(up.output, "child_exited", name))
                target = len(sent) + PER_KILL
                await conversation.allow(PER_KILL)
                await acked_more(sent, 2)
                os.kill(before[name], signal.SIGKILL)  # while the rest are being sent

                def restarted(name: str = name, old: int = before[name]) -> bool:
                    now = up.children().get(name)
                    return now is not None and now.pid != old

                await eventually(restarted, timeout=30, what=f"{name} to be started again")
                # Ready again, by its own /readyz (the store: by the archive's store check).
                readiness = "history" if name == "store" else name
                await eventually(
                    lambda s=readiness: up.ready(s, probe),  # type: ignore[misc]
                    timeout=90,
                    what=f"{name} ready after its restart",
                )
                # Our kill, logged as such (a restart may fail on a busy machine, e.g. the
                # broker slow to answer, and be restarted again: later lines).
                exits = supervisor_events(up.output, "child_exited", name)[exited:]
                assert exits and exits[0].get("signal") == "SIGKILL", supervised(up)
                # Nobody else was restarted, and no socket closed for a background service.
                after = {child: process.pid for child, process in up.children().items()}
                others = {c: p for c, p in after.items() if c != name}
                assert others == {c: p for c, p in before.items() if c != name}, supervised(up)
                if name != "gateway":
                    assert customer.reconnects == agent.reconnects == 0, (
                        name,
                        customer.close_codes,
                        agent.close_codes,
                    )
                # The chat went on through the kill and the restart.
                await eventually(lambda t=target: chatted(t), timeout=90, what="the chat")
        finally:
            flowing.cancel()
            await asyncio.gather(flowing, return_exceptions=True)
        # The gateway's own restart: clients resume (its /readyz can answer before a client's
        # next attempt, and the chat may have sent its share before the kill).
        await eventually(
            lambda: customer.reconnects >= 1 and agent.reconnects >= 1,
            timeout=30,
            what="the clients to resume on the restarted gateway",
        )
        await settle(
            system, http, owner, customer, agent, conversation_id, sent, "up: each child SIGKILLed"
        )
        await customer.stop()
        await agent.stop()


async def test_killing_up_itself_leaves_no_process_behind(up: Up) -> None:
    assert up.process is not None
    children = up.children()
    assert set(children) == set(CHILDREN)
    up.process.send_signal(signal.SIGKILL)
    up.process.wait(10)
    try:
        await eventually(lambda: not up.ours(), timeout=60, what="every child to stop")
    except AssertionError:
        left = [(p.pid, p.status(), p.cmdline()[-1:]) for p in up.ours()]
        raise AssertionError(f"still running after `up` was killed: {left}") from None
