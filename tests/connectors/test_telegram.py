"""Telegram: long polling through a network cut, 429 retry_after, typing, the webhook secret."""

import asyncio

import structlog.testing

from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from tests.connectors.contract import TENANT
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.harness import TelegramDriver, configure
from tests.connectors.helpers import LogWatch, agent_reply, eventually


async def test_long_polling_survives_a_network_cut_and_loses_nothing(
    fake_telegram: FakeTelegram, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    reply = await configure(
        bus,
        connectors.box,
        TENANT,
        "tgpoll",
        "telegram",
        {"mode": "polling"},
        {"bot_token": fake_telegram.token},
    )
    assert reply.ok
    await fake_telegram.queue_update(fake_telegram.update(7001, "before the cut"))
    await watch.wait_for("message.sent", body="before the cut")

    await fake_telegram.cut()  # connections refused: the poller must back off and come back
    queued = [fake_telegram.update(7001, f"during the cut {i}") for i in range(3)]
    fake_telegram.updates.extend(queued)
    await fake_telegram.restore()

    # The cut reset the long poll in flight (tests/connectors/fakes/server.py): the poller's
    # next calls are refused until the restore, then its backoff brings it back.
    for i in range(3):
        await watch.wait_for("message.sent", body=f"during the cut {i}", timeout=30)
    # (Delivered at all means polled again: a cut drops the poll that was in flight, and
    # updates only come in answers to getUpdates. Counting the calls raced the cut itself.)
    bodies = [e.data["body"] for e in watch.of("message.sent", author_kind="customer")]
    assert bodies == ["before the cut", "during the cut 0", "during the cut 1", "during the cut 2"]
    # confirmed only after the publish: the next poll drops them from the server's queue
    await eventually(
        lambda: fake_telegram.updates == [], what="updates confirmed by the next offset"
    )


async def test_rate_limit_retry_after_is_honoured(
    fake_telegram: FakeTelegram, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver = TelegramDriver(fake_telegram, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    assert (await driver.send("55", "hi")).status_code == 200
    conversation_id = (await watch.wait_for("connector.inbound_received"))[0].data[
        "conversation_id"
    ]
    fake_telegram.rate_limited = [1]
    loop = asyncio.get_running_loop()
    started = loop.time()
    message_id = await agent_reply(bus, TENANT, conversation_id, "after the flood wait")
    await watch.wait_for("connector.outbound_sent", message_id=message_id)
    assert loop.time() - started >= 1.0  # waited retry_after, not the shorter backoff
    assert driver.delivered() == ["after the flood wait"]
    assert watch.of("connector.outbound_failed") == []


async def test_agent_typing_becomes_send_chat_action(
    fake_telegram: FakeTelegram, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    from contracts.envelope import Actor, Envelope

    driver = TelegramDriver(fake_telegram, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    assert (await driver.send("56", "hi")).status_code == 200
    conversation_id = (await watch.wait_for("connector.inbound_received"))[0].data[
        "conversation_id"
    ]
    await bus.publish(
        Envelope(
            type="typing.changed",
            tenant=TENANT,
            stream=f"conv:{conversation_id}",
            actor=Actor(kind="agent", id="agent-1"),
            data={
                "conversation_id": conversation_id,
                "who_kind": "agent",
                "who_id": "agent-1",
                "typing": True,
            },
        )
    )
    await eventually(
        lambda: fake_telegram.actions == [{"chat_id": 56, "action": "typing"}], what="typing action"
    )


async def test_permanent_error_is_reported_not_retried(
    fake_telegram: FakeTelegram, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    driver = TelegramDriver(fake_telegram, connectors)
    assert (await driver.setup(bus, TENANT)).ok
    assert (await driver.send("57", "hi")).status_code == 200
    conversation_id = (await watch.wait_for("connector.inbound_received"))[0].data[
        "conversation_id"
    ]
    too_long = "x" * 5000  # Telegram refuses > 4096 characters; we cut it, so this one goes through
    ok_id = await agent_reply(bus, TENANT, conversation_id, too_long)
    await watch.wait_for("connector.outbound_sent", message_id=ok_id)
    assert len(driver.delivered()[0]) == 4096
    fake_telegram.token_revoked = True
    failed_id = await agent_reply(bus, TENANT, conversation_id, "never arrives")
    failed = await watch.wait_for("connector.outbound_failed", message_id=failed_id)
    assert failed[0].data["permanent"] is True and failed[0].data["reason"].startswith("401")


async def test_polling_conflict_is_explained_and_polling_resumes(
    fake_telegram: FakeTelegram, connectors: ConnectorsService, bus: Bus, watch: LogWatch
) -> None:
    fake_telegram.other_poller = True
    with structlog.testing.capture_logs() as logs:
        assert (
            await configure(
                bus,
                connectors.box,
                TENANT,
                "tgpoll2",
                "telegram",
                {"mode": "polling"},
                {"bot_token": fake_telegram.token},
            )
        ).ok
        conflict = await eventually(
            lambda: [e for e in logs if e["event"] == "telegram_poll_conflict"],
            what="conflict log event",
        )
    assert "only one" in conflict[0]["explanation"] or "one poller" in conflict[0]["explanation"]
    fake_telegram.other_poller = False
    await fake_telegram.queue_update(fake_telegram.update(7002, "after the conflict"))
    await watch.wait_for("message.sent", body="after the conflict", timeout=15)
