"""A platform user keeps one conversation until it is closed; the next message opens another."""

from connectors.service import ConnectorsService
from connectors.store import ConnectorStore
from contracts.envelope import Actor, Envelope
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.store import database, make_client
from tests.connectors.contract import TENANT
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.harness import TelegramDriver
from tests.connectors.helpers import LogWatch, eventually_async


async def test_same_user_same_conversation_until_closed(
    fake_telegram: FakeTelegram, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver = TelegramDriver(fake_telegram, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    assert (await driver.send("81", "one")).status_code == 200
    assert (await driver.send("81", "two")).status_code == 200
    assert (await driver.send("82", "other user")).status_code == 200
    await watch.wait_for("connector.inbound_received", count=3)
    conv = {
        e.data["body"]: e.data["conversation_id"]
        for e in watch.of("message.sent", author_kind="customer")
    }
    assert conv["one"] == conv["two"] != conv["other user"]

    close = Envelope(
        type="conversation.close",
        tenant=TENANT,
        stream=f"conv:{conv['one']}",
        actor=Actor(kind="agent", id="agent-1"),
        data={"conversation_id": conv["one"], "closed_by": "agent"},
    )
    assert (await RpcClient(bus).command("agent", close)).ok
    await watch.wait_for("conversation.closed", conversation_id=conv["one"])
    mongo = make_client(connectors.settings.mongo_url or "")
    try:
        mapping = ConnectorStore(database(mongo, connectors.settings.mongo_db))
        await eventually_async(
            lambda: mapping.conversation_for_chat(TENANT, "tg1", "telegram", "81"),
            lambda c: c is not None and c.closed,
        )
    finally:
        await mongo.close()
    assert (await driver.send("81", "three")).status_code == 200
    three = await watch.wait_for("message.sent", body="three")
    assert three[0].data["conversation_id"] != conv["one"]
    requested = await watch.wait_for(
        "conversation.requested", conversation_id=three[0].data["conversation_id"]
    )
    assert requested[0].data["channel"] == "telegram"
