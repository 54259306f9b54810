"""Replies queued while a platform is down survive a connectors restart and go out once."""

from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.connectors.contract import TENANT
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.harness import MessengerDriver
from tests.connectors.helpers import LogWatch, agent_reply


async def test_outbox_survives_restart_and_delivers_once(
    connector_settings: Settings,
    agent_service: object,
    fake_messenger: FakeMessenger,
    bus: Bus,
    watch: LogWatch,
) -> None:
    first = ConnectorsService(connector_settings)
    await first.start()
    driver = MessengerDriver(fake_messenger, first)
    assert (await driver.setup(bus, TENANT)).ok
    assert (await driver.send("psid-9", "hello")).status_code == 200
    conversation_id = (await watch.wait_for("connector.inbound_received"))[0].data[
        "conversation_id"
    ]
    fake_messenger.down = True
    message_id = await agent_reply(bus, TENANT, conversation_id, "while you were away")
    await watch.wait_for("connector.outbound_failed", message_id=message_id, timeout=15)
    await first.stop()

    fake_messenger.down = False
    second = ConnectorsService(connector_settings)  # reads the log from its stored position
    await second.start()
    try:
        await watch.wait_for("connector.outbound_sent", message_id=message_id, timeout=15)
        again = await agent_reply(bus, TENANT, conversation_id, "and now")
        await watch.wait_for("connector.outbound_sent", message_id=again)
        assert driver.delivered() == ["while you were away", "and now"]
        assert len(watch.of("connector.outbound_sent", message_id=message_id)) == 1
    finally:
        await second.stop()
