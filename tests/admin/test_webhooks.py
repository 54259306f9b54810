"""Outbound webhooks against a real local HTTP receiver: signed, retried, in order, none dropped."""

import json

import httpx
import pytest
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
from tests.system import RunningSystem
from tools.embedded import free_port


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The receivers listen on loopback: allowed here as an operator allows an on-premises one.
    return settings.model_copy(update={"webhook_allowed_networks": "127.0.0.1/32"})


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
    system: RunningSystem,
) -> None:
    receiver = Receiver(free_port())  # not started yet: the endpoint is down
    counted = {outcome: deliveries(outcome) for outcome in ("delivered", "failed")}
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        acme, globex = (
            await owner_session(system, http, "acme"),
            await owner_session(system, http, "globex"),
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
            json={"email": "x@acme.test", "name": "X", "password": "a-strong-pass-1"},
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
    assert {b["event"]["tenant"] for b in bodies} == {"acme"}
    for headers, body in receiver.received:
        assert verify(hook["secret"], body, headers[SIGNATURE_HEADER.lower()])
        assert not verify("wrong-secret", body, headers[SIGNATURE_HEADER.lower()])
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
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
    system: RunningSystem, bus: Bus
) -> None:
    receiver = await Receiver(free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
            acme = await owner_session(system, http, "acme")
            await subscribe(http, acme, receiver.url, ["message.sent"])
        await bus.publish(chat_message("acme", 1))
        await eventually(lambda: len(receiver.received) == 1, what="first delivery")
        await eventually(
            lambda: position_stored(system, delivered(receiver)[0]["position"]),
            what="the first delivery's position stored",
        )
        admin = next(s for s in system.services if isinstance(s, AdminService))
        await admin.stop()
        resent = chat_message("acme", 2)
        await bus.publish_many([resent, resent, chat_message("globex", 3), chat_message("acme", 4)])
        restarted = AdminService(system.settings)
        await restarted.start()
        try:
            await eventually(
                lambda: any(b["event"]["data"]["message_id"] == "m4" for b in delivered(receiver)),
                what="deliveries after restart",
            )
        finally:
            await restarted.stop()
            system.services.remove(admin)
    finally:
        await receiver.stop()
    assert [b["event"]["data"]["message_id"] for b in delivered(receiver)] == ["m1", "m2", "m4"]


async def test_batches_of_chat_events_do_not_resync_the_webhook_workers(
    system: RunningSystem, bus: Bus
) -> None:
    admin = next(s for s in system.services if isinstance(s, AdminService))
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        acme = await owner_session(system, http, "acme")
        await subscribe(http, acme, "http://127.0.0.1:9/hook", ["message.sent"])
        await eventually(
            lambda: bool(admin.state.tenants["acme"].webhooks), what="the subscription folded"
        )
        syncs = admin.webhook_syncs
        for n in range(20):
            await bus.publish(chat_message("acme", n))
        # folded after the chat messages (log order): once it is in the state, so are they
        made = await http.post("/api/canned", headers=acme, json={"shortcut": "s", "text": "t"})
        assert made.status_code < 300, made.text
        await eventually(
            lambda: bool(admin.state.tenants["acme"].canned), what="the canned response folded"
        )
        assert admin.webhook_syncs == syncs
        await subscribe(http, acme, "http://127.0.0.1:9/other", ["message.sent"])
        await eventually(
            lambda: len(admin.state.tenants["acme"].webhooks) == 2, what="the second folded"
        )
        assert admin.webhook_syncs > syncs
        assert admin.webhooks is not None
        assert len(admin.webhooks._tasks) == 2
