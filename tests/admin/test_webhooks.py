"""Outbound webhooks against a real local HTTP receiver: signed, retried, in order, none dropped.

Two tests share one system (``module_system``), each with tenants of its own; the restart
test has a system of its own.
"""

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from agent_service.admin.service import AdminService
from contracts import Actor, Envelope
from outbound_webhooks.documents import WebhookPosition
from outbound_webhooks.signing import SIGNATURE_HEADER, verify
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.admin.helpers import eventually, owner_session
from tests.admin.receiver import Receiver
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningSystem, running_system
from tools.embedded import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")
# The receivers listen on loopback: allowed here as an operator allows an on-premises one.
LOOPBACK = {"webhook_allowed_networks": "127.0.0.1/32"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=LOOPBACK)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_system(
    vhosts: RabbitVhosts, mongo_server: MongoServer
) -> AsyncIterator[RunningSystem]:
    """tests/conftest.py's ``module_system``, with the loopback receivers allowed."""
    async with shared_system(vhosts, mongo_server, with_history=False, **LOOPBACK) as running:
        yield running


@pytest.fixture
async def own_system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings, with_history=False) as running:
        yield running


def delivered(receiver: Receiver) -> list[dict]:
    return [json.loads(body) for _, body in receiver.received]


async def position_stored(system: RunningSystem, position: int) -> bool:
    """The worker stores its position after a delivery was answered and recorded: a restart
    before that resends the delivery (at least once). The restart test waits for it."""
    client = make_client(system.settings.mongo_url or "")
    try:
        positions = database(client, system.settings.mongo_db)[WebhookPosition.Settings.name]
        found = await positions.find_one({"position": {"$gte": position}})
    finally:
        await client.close()
    return found is not None


async def subscribe(
    http: httpx.AsyncClient, owner: dict[str, str], url: str, types: list[str]
) -> dict:
    response = await http.post(
        "/api/admin/webhooks", headers=owner, json={"url": url, "event_types": types}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_an_endpoint_that_was_down_gets_every_event_signed_and_in_order(
    module_system: RunningSystem,
) -> None:
    receiver = Receiver(free_port())  # not started yet: the endpoint is down
    counted = {outcome: deliveries(outcome) for outcome in ("delivered", "failed")}
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        acme, globex = (
            await owner_session(module_system, http, "hookacme"),
            await owner_session(module_system, http, "hookglobex"),
        )
        hook = await subscribe(
            http, acme, receiver.url, ["canned_response.created", "tenant.settings_changed"]
        )
        expected = []
        for i in range(3):
            made = await http.post(
                "/api/canned", headers=acme, json={"shortcut": f"s{i}", "text": f"text {i}"}
            )
            expected += made.json()["event_ids"]
        await http.post(
            "/api/admin/agents",
            headers=acme,
            json={"email": "x@hookacme.test", "name": "X", "password": "a-strong-pass-1"},
        )
        expected += (
            await http.patch("/api/admin/settings", headers=acme, json={"greeting": "Hello"})
        ).json()["event_ids"]
        await http.post(
            "/api/canned", headers=globex, json={"shortcut": "other", "text": "another tenant"}
        )

        async def failures() -> bool:
            log = (
                await http.get(
                    f"/api/admin/webhooks/{hook['subscription_id']}/deliveries", headers=acme
                )
            ).json()
            return sum(not d["ok"] for d in log) >= 2

        await eventually(failures, what="failed attempts in the delivery log")
        await receiver.start()
        try:
            await eventually(
                lambda: len(receiver.received) >= len(expected), what="catch-up deliveries"
            )
        finally:
            await receiver.stop()
    bodies = delivered(receiver)
    assert [
        b["event"]["id"] for b in bodies
    ] == expected  # in log order, nothing dropped, nothing extra
    assert [b["position"] for b in bodies] == sorted(b["position"] for b in bodies)
    assert {b["event"]["tenant"] for b in bodies} == {"hookacme"}
    for headers, body in receiver.received:
        assert verify(hook["secret"], body, headers[SIGNATURE_HEADER.lower()])
        assert not verify("wrong-secret", body, headers[SIGNATURE_HEADER.lower()])
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        log = (
            await http.get(
                f"/api/admin/webhooks/{hook['subscription_id']}/deliveries", headers=acme
            )
        ).json()
        assert {d["event_id"] for d in log if d["ok"]} == set(expected)
        # every attempt in the delivery log was counted once, by its outcome
        assert deliveries("delivered") - counted["delivered"] == sum(d["ok"] for d in log)
        assert deliveries("failed") - counted["failed"] == sum(not d["ok"] for d in log)
        assert (
            await http.get(
                f"/api/admin/webhooks/{hook['subscription_id']}/deliveries", headers=globex
            )
        ).status_code == 404


def deliveries(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("relaydesk_webhook_deliveries_total", {"outcome": outcome}) or 0.0
    )


def chat_message(tenant: str, n: int) -> Envelope:
    data = {
        "conversation_id": "c1",
        "message_id": f"m{n}",
        "body": f"hello {n}",
        "author_kind": "customer",
        "author_id": "v1",
    }
    return Envelope(
        type="message.sent",
        v=2,
        tenant=tenant,
        stream="conversation:c1",
        actor=Actor(kind="customer", id="v1"),
        data=data,
    )


async def test_deliveries_resume_from_the_stored_position_after_a_restart_without_duplicates(
    own_system: RunningSystem, bus: Bus
) -> None:
    # A system of its own: it stops the system's admin service and runs another in its place.
    receiver = await Receiver(free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=own_system.gateway.base_url) as http:
            acme = await owner_session(own_system, http, "acme")
            await subscribe(http, acme, receiver.url, ["message.sent"])
        await bus.publish(chat_message("acme", 1))
        await eventually(lambda: len(receiver.received) == 1, what="first delivery")
        await eventually(
            lambda: position_stored(own_system, delivered(receiver)[0]["position"]),
            what="the first delivery's position stored",
        )
        admin = next(s for s in own_system.services if isinstance(s, AdminService))
        await admin.stop()
        resent = chat_message("acme", 2)
        await bus.publish_many([resent, resent, chat_message("globex", 3), chat_message("acme", 4)])
        restarted = AdminService(own_system.settings)
        await restarted.start()
        try:
            await eventually(
                lambda: any(b["event"]["data"]["message_id"] == "m4" for b in delivered(receiver)),
                what="deliveries after restart",
            )
        finally:
            await restarted.stop()
            own_system.services.remove(admin)
    finally:
        await receiver.stop()
    assert [b["event"]["data"]["message_id"] for b in delivered(receiver)] == ["m1", "m2", "m4"]


async def test_batches_of_chat_events_do_not_resync_the_webhook_workers(
    module_system: RunningSystem, module_bus: Bus
) -> None:
    admin = next(s for s in module_system.services if isinstance(s, AdminService))
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        acme = await owner_session(module_system, http, "hooksync")
        hooks = [await subscribe(http, acme, "http://127.0.0.1:9/hook", ["message.sent"])]
        await eventually(
            lambda: bool(admin.state.tenants["hooksync"].webhooks), what="the subscription folded"
        )
        syncs = admin.webhook_syncs
        for n in range(20):
            await module_bus.publish(chat_message("hooksync", n))
        # folded after the chat messages (log order): once it is in the state, so are they
        made = await http.post("/api/canned", headers=acme, json={"shortcut": "s", "text": "t"})
        assert made.status_code < 300, made.text
        await eventually(
            lambda: bool(admin.state.tenants["hooksync"].canned), what="the canned response folded"
        )
        assert admin.webhook_syncs == syncs
        hooks.append(await subscribe(http, acme, "http://127.0.0.1:9/other", ["message.sent"]))
        await eventually(
            lambda: len(admin.state.tenants["hooksync"].webhooks) == 2, what="the second folded"
        )
        assert admin.webhook_syncs > syncs
        assert admin.webhooks is not None
        workers = admin.webhooks._tasks  # the shared system's, every tenant's: count this one's
        assert len([key for key in workers if key[0] == "hooksync"]) == 2
        # The hooks' failing deliveries would go on counting in the process-wide delivery
        # metrics that the first test checks: stopped, whichever order the tests run in.
        for hook in hooks:
            removed = await http.delete(
                f"/api/admin/webhooks/{hook['subscription_id']}", headers=acme
            )
            assert removed.status_code == 200, removed.text
        await eventually(
            lambda: not [key for key in workers if key[0] == "hooksync"], what="workers stopped"
        )
