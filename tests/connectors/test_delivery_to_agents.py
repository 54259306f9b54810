"""An agent answering a Telegram chat over the gateway hears whether the reply was delivered."""

from collections.abc import AsyncIterator

import pytest

from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.connectors.conftest import TENANT
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.harness import TelegramDriver, system_with_connectors
from tests.gateway.wsclient import Client
from tests.system import RunningSystem


@pytest.fixture
async def system_and_connectors(
    connector_settings: Settings,
) -> AsyncIterator[tuple[RunningSystem, ConnectorsService]]:
    async with system_with_connectors(connector_settings) as running:
        yield running


async def test_agent_socket_receives_delivery_results_for_its_replies(
    system_and_connectors, fake_telegram: FakeTelegram, bus: Bus
) -> None:
    system, service = system_and_connectors
    driver = TelegramDriver(fake_telegram, service)
    assert (await driver.setup(bus, TENANT)).ok
    agent = await Client.connect(
        system.gateway.ws_url, system.agent_token(TENANT, "ann", name="Ann")
    )
    assert (await agent.op("status", status="online"))["t"] == "ack"
    assert (await driver.send("71", "is my order shipped?")).status_code == 200
    offered = await agent.wait_event("conversation.offered", timeout=15)
    conversation_id = offered["event"]["data"]["conversation_id"]
    assert (await agent.op("accept", conversation_id=conversation_id))["t"] == "ack"

    reply = await agent.op("send", conversation_id=conversation_id, body="yes, yesterday")
    sent = await agent.wait_event(
        "connector.outbound_sent", timeout=15, message_id=reply["message_id"]
    )
    assert (
        sent["event"]["data"]["platform"] == "telegram"
        and sent["event"]["data"]["conversation_id"] == conversation_id
    )
    # the greeting and the join line reach the platform user too, before the reply
    greeting, joined, answer = driver.delivered()
    assert greeting == "Hi! How can we help?" and joined.endswith("has entered the chat")
    assert answer == "yes, yesterday"

    fake_telegram.token_revoked = True  # the platform refuses from now on: a permanent failure
    lost = await agent.op("send", conversation_id=conversation_id, body="tracking number follows")
    failed = await agent.wait_event(
        "connector.outbound_failed", timeout=15, message_id=lost["message_id"]
    )
    assert failed["event"]["data"]["permanent"] is True and failed["event"]["data"][
        "reason"
    ].startswith("401")
    await agent.close()
