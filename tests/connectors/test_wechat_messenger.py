"""WeChat and Messenger specifics: handshakes, token refresh, echoes, safe mode, body cap."""

import asyncio
import hashlib
import time

import httpx
import pytest

from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.messenger import MessengerClient
from connectors.service import ConnectorsService
from connectors.wechat_crypto import signature
from relaydesk.bus import Bus
from tests.connectors.contract import TENANT
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.fakes.wechat import FakeWeChat, text_xml
from tests.connectors.harness import MessengerDriver, WeChatDriver, configure
from tests.connectors.helpers import LogWatch, agent_reply


async def test_wechat_signature_matches_the_official_example() -> None:
    assert (
        signature("AAAAA", "1714037059", "486452656")
        == hashlib.sha1(b"1714037059486452656AAAAA").hexdigest()
    )


async def test_wechat_token_expiry_is_refreshed_transparently(
    fake_wechat: FakeWeChat, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver = WeChatDriver(fake_wechat, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    response = await driver.send("u1", "你好")
    assert response.status_code == 200 and response.text == "success"
    conversation_id = (await watch.wait_for("connector.inbound_received"))[0].data[
        "conversation_id"
    ]
    first = await agent_reply(bus, TENANT, conversation_id, "one")
    await watch.wait_for("connector.outbound_sent", message_id=first)
    assert fake_wechat.token_fetches == 1
    fake_wechat.expire_tokens()  # the next send gets 42001
    second = await agent_reply(bus, TENANT, conversation_id, "two")
    await watch.wait_for("connector.outbound_sent", message_id=second)
    assert fake_wechat.token_fetches == 2
    # 42001 needs a normal fetch: forced refreshes are rationed (20 a day, 30 s apart)
    assert fake_wechat.forced_refreshes == []
    fake_wechat.refresh_elsewhere()  # 40001: only a forced refresh helps, and one is spent
    third = await agent_reply(bus, TENANT, conversation_id, "three")
    await watch.wait_for("connector.outbound_sent", message_id=third)
    assert len(fake_wechat.forced_refreshes) == 1
    fake_wechat.refresh_elsewhere()  # again within 30 s: no second forced refresh is asked for
    fourth = await agent_reply(bus, TENANT, conversation_id, "four")
    failed = await watch.wait_for("connector.outbound_failed", message_id=fourth)
    assert failed[0].data["permanent"] is False and "rationed" in failed[0].data["reason"]
    assert len(fake_wechat.forced_refreshes) == 1 and fake_wechat.forced_refused == 0
    assert driver.delivered() == ["one", "two", "three"]


async def test_wechat_url_verification_and_plaintext_refused_unless_allowed(
    fake_wechat: FakeWeChat, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver = WeChatDriver(fake_wechat, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    timestamp, nonce = str(int(time.time())), "486452656"
    async with httpx.AsyncClient() as http:
        ok = await http.get(
            driver.url,
            params={
                "signature": signature("AAAAA", timestamp, nonce),
                "timestamp": timestamp,
                "nonce": nonce,
                "echostr": "echo-123",
            },
        )
        bad = await http.get(
            driver.url,
            params={
                "signature": "0" * 40,
                "timestamp": timestamp,
                "nonce": nonce,
                "echostr": "echo-123",
            },
        )
    assert (ok.status_code, ok.text) == (200, "echo-123")
    assert bad.status_code == 403
    plain = await fake_wechat.push(
        driver.url, text_xml("gh", "openid_p", "plain text", 1), safe=False
    )
    assert plain.status_code == 403  # unsigned body: refused while the connector wants safe mode
    assert (await driver.send("u2", "safe text")).text == "success"
    await watch.wait_for("message.sent", body="safe text")
    assert watch.of("message.sent", body="plain text") == []


async def test_messenger_verification_handshake(
    fake_messenger: FakeMessenger, connectors: ConnectorsService, bus: Bus
) -> None:
    driver = MessengerDriver(fake_messenger, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    async with httpx.AsyncClient() as http:
        ok = await http.get(
            driver.url,
            params={
                "hub.mode": "subscribe",
                "hub.challenge": "1158201444",
                "hub.verify_token": "verify-me",
            },
        )
        bad = await http.get(
            driver.url,
            params={
                "hub.mode": "subscribe",
                "hub.challenge": "1158201444",
                "hub.verify_token": "guess",
            },
        )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert bad.status_code == 403


async def test_messenger_echoes_ignored_and_reply_inside_window_is_response(
    fake_messenger: FakeMessenger, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver = MessengerDriver(fake_messenger, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    echo = await fake_messenger.post_webhook(
        driver.url, fake_messenger.notification("psid-1", "our own echo", echo=True)
    )
    assert echo.status_code == 200
    assert (await driver.send("psid-1", "from the user")).status_code == 200
    conversation_id = (await watch.wait_for("connector.inbound_received"))[0].data[
        "conversation_id"
    ]
    assert watch.of("message.sent", body="our own echo") == []
    message_id = await agent_reply(bus, TENANT, conversation_id, "answer")
    await watch.wait_for("connector.outbound_sent", message_id=message_id)
    assert fake_messenger.sent == [
        {"recipient": {"id": "psid-1"}, "message": {"text": "answer"}, "messaging_type": "RESPONSE"}
    ]


async def test_oversized_body_refused_before_reading(
    fake_messenger: FakeMessenger, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver = MessengerDriver(fake_messenger, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    huge = fake_messenger.notification("psid-2", "x" * 300_000)
    assert (await fake_messenger.post_webhook(driver.url, huge)).status_code == 413


async def test_unknown_connector_is_rejected(connectors: ConnectorsService, bus: Bus) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"http://127.0.0.1:{connectors.port}/webhooks/telegram/nope", json={"update_id": 1}
        )
    assert response.status_code == 403
    reply = await configure(
        bus,
        connectors.box,
        TENANT,
        "bad",
        "wechat",
        {"app_id": "wx"},
        {"app_secret": "s", "token": "t"},
    )
    assert (
        not reply.ok
        and reply.code == "invalid_payload"
        and "encoding_aes_key" in (reply.message or "")
    )


async def test_wechat_gets_success_within_5s_even_when_routing_is_down(
    connector_settings,
    agent_service,
    fake_wechat: FakeWeChat,
    connectors: ConnectorsService,
    bus: Bus,
    watch: LogWatch,
) -> None:  # type: ignore[no-untyped-def]
    from agent_service.service import AgentService

    driver = WeChatDriver(fake_wechat, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    await agent_service.stop()  # conversation.request cannot be answered now
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await driver.send("u9", "anyone there?")
    assert response.text == "success" and loop.time() - started < 5.0
    replacement = AgentService(connector_settings)
    await replacement.start()
    try:
        await watch.wait_for(
            "message.sent", body="anyone there?", timeout=30
        )  # published once routing is back
        assert len(watch.of("message.sent", body="anyone there?")) == 1
    finally:
        await replacement.stop()


async def test_messenger_outside_24h_window_uses_human_agent_tag_only_when_enabled(
    fake_messenger: FakeMessenger,
) -> None:
    """Meta allows the HUMAN_AGENT tag for approved pages only: off unless the connector's
    ``human_agent_tag`` says so; without it a late reply fails before any call."""
    public = {"page_id": fake_messenger.page_id}
    secrets = {"page_token": fake_messenger.page_token}
    plain = Connector("acme", "fb1", "messenger", public, secrets)
    approved = Connector("acme", "fb1", "messenger", {**public, "human_agent_tag": "true"}, secrets)
    late = time.time() - 25 * 3600
    async with httpx.AsyncClient() as http:
        client = MessengerClient(http, fake_messenger.base_url, http)
        for last_inbound in (late, None):
            with pytest.raises(DeliveryError) as refused:
                await client.send_text(plain, "psid-3", "late answer", last_inbound=last_inbound)
            assert refused.value.permanent and "24-hour window" in refused.value.reason
        assert fake_messenger.calls == []
        await client.send_text(approved, "psid-3", "late answer", last_inbound=late)
        await client.send_text(approved, "psid-3", "no inbound known", last_inbound=None)
        await client.send_text(plain, "psid-3", "in time", last_inbound=time.time())
        revoked = Connector("acme", "fb1", "messenger", public, {"page_token": "revoked"})
        with pytest.raises(DeliveryError) as failure:
            await client.send_text(revoked, "psid-3", "x", last_inbound=time.time())
        assert failure.value.permanent and failure.value.reason.startswith("190/")
        assert failure.value.credentials
    assert [(m["messaging_type"], m.get("tag")) for m in fake_messenger.sent] == [
        ("MESSAGE_TAG", "HUMAN_AGENT"),
        ("MESSAGE_TAG", "HUMAN_AGENT"),
        ("RESPONSE", None),
    ]
