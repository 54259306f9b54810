"""Outbound replies across a RabbitMQ outage (stopped as tests/fault does: rabbitmqctl stop_app).

The platform's answer is written to the outbox before ``connector.outbound_sent`` is published,
so a reply sent while the broker is away is reported once it is back, never sent again.
"""

import asyncio

import pytest

from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from tests.connectors.contract import TENANT
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.harness import MessengerDriver
from tests.connectors.helpers import LogWatch, agent_reply, eventually
from tests.servers import OwnRabbitNode, RabbitVhosts

# stop_app on a broker node of the module's own (own_broker, tests/conftest.py): nobody
# else's broker stops, so this runs in the parallel phase.
pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def vhosts(own_broker: OwnRabbitNode) -> RabbitVhosts:
    return own_broker.vhosts


async def test_replies_queued_before_a_broker_outage_reach_the_platform_exactly_once(
    own_broker: OwnRabbitNode,
    fake_messenger: FakeMessenger,
    connectors: ConnectorsService,
    bus: Bus,
    watch: LogWatch,
) -> None:
    driver = MessengerDriver(fake_messenger, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    assert (await driver.send("psid-o", "hello")).status_code == 200
    conversation_id = (await watch.wait_for("connector.inbound_received"))[0].data[
        "conversation_id"
    ]

    fake_messenger.down = True  # both replies are queued in the outbox; the first one is attempted
    first = await agent_reply(bus, TENANT, conversation_id, "sent during the outage")
    second = await agent_reply(bus, TENANT, conversation_id, "queued behind it")
    await watch.wait_for("connector.outbound_failed", message_id=first)

    await asyncio.to_thread(own_broker.ctl, "stop_app")
    try:
        fake_messenger.down = False
        # the platform gets the head of the queue while nothing can be published
        await eventually(
            lambda: driver.delivered() == ["sent during the outage"],
            timeout=10,
            what="a send during the outage",
        )
        attempts_during_outage = len(fake_messenger.calls)
    finally:
        await asyncio.to_thread(own_broker.ctl, "start_app")
        await asyncio.to_thread(own_broker.ctl, "await_startup")

    await watch.wait_for("connector.outbound_sent", message_id=second, timeout=30)
    after = await agent_reply(bus, TENANT, conversation_id, "after the outage")
    await watch.wait_for("connector.outbound_sent", message_id=after, timeout=15)

    assert driver.delivered() == [
        "sent during the outage",
        "queued behind it",
        "after the outage",
    ]  # each exactly once, in order
    assert (
        len(fake_messenger.calls) == attempts_during_outage + 2
    )  # the reply sent during the outage was never retried
    for message_id in (first, second, after):
        assert len(watch.of("connector.outbound_sent", message_id=message_id)) == 1
    assert [e.data["message_id"] for e in watch.of("connector.outbound_failed")] == [first]
