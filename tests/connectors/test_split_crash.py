"""A connectors process SIGKILLed in the middle of a split reply: after a restart the reply
goes on at the first part not yet sent — nothing lost, the parts in order, none twice.

The connectors service runs as a child process (``relaydesk connectors``) so that the kill is
a real one: no ``finally``, no flush. The fake Telegram holds the second part's sendMessage
unprocessed while the process dies, then drops it (the request never reached Telegram)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from agent_service.service import AgentService
from relaydesk.bus import Bus
from relaydesk.sealing import SecretBox
from relaydesk.settings import Settings
from tests.connectors.conftest import PUBLIC_URL, quiet_tenant
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.harness import configure
from tests.connectors.helpers import LogWatch, agent_reply, eventually
from tests.fault.processes import ServiceProcess
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import throwaway_settings
from tools.embedded import free_port

TENANT = "crash"
SECRET = "crash-test-secret"


@pytest_asyncio.fixture
async def settings_for_child(
    vhosts: RabbitVhosts, mongo_server: MongoServer
) -> AsyncIterator[Settings]:
    async with throwaway_settings(vhosts, mongo_server) as settings:
        yield settings


async def test_a_kill_in_the_middle_of_a_split_reply_loses_no_part_and_keeps_the_order(
    settings_for_child: Settings, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    settings, fake = settings_for_child, fake_telegram
    port = free_port()
    child = ServiceProcess(
        "connectors",
        settings,
        tmp_path,
        env={
            "RELAYDESK_CONNECTORS_PORT": str(port),
            "RELAYDESK_CONNECTORS_PUBLIC_URL": PUBLIC_URL,
            "RELAYDESK_TELEGRAM_API_BASE": fake.base_url,
        },
    )
    bus = await Bus(settings.amqp_url, service="test", stream_url=settings.stream_url).connect()
    await quiet_tenant(bus, TENANT)  # the user gets the reply's parts only, no greeting
    agent = AgentService(settings)
    await agent.start()
    watch = await LogWatch(bus).start()
    await child.start()
    try:
        box = SecretBox.from_settings(settings)  # the child's key
        assert (
            await configure(
                bus,
                box,
                TENANT,
                "tg-crash",
                "telegram",
                {"mode": "webhook"},
                {"bot_token": fake.token, "webhook_secret": SECRET},
            )
        ).ok
        url = f"http://127.0.0.1:{port}/webhooks/telegram/tg-crash"
        assert (
            await fake.post_webhook(url, fake.update(95, "long answer please"), SECRET)
        ).is_success
        conversation = (await watch.wait_for("message.sent", body="long answer please"))[0].data[
            "conversation_id"
        ]

        paragraphs = [f"part{p} " + " ".join(f"w{p}.{i}" for i in range(500)) for p in range(3)]
        body = "\n\n".join(paragraphs)  # three parts of 3,000-odd characters each
        fake.hold_send = 2  # the second part's sendMessage waits, unprocessed
        message_id = await agent_reply(bus, TENANT, conversation, body)
        await eventually(lambda: fake.holding, timeout=20, what="the second part in flight")
        child.kill()
        fake.release(process=False)  # it never reached Telegram
        assert [m["text"] for m in fake.sent] == [paragraphs[0]]

        await child.start()  # reads its outbox: the first part is recorded as sent
        sent = await watch.wait_for("connector.outbound_sent", message_id=message_id, timeout=30)
        assert [m["text"] for m in fake.sent] == paragraphs  # each part once, in order
        assert sent[0].data["parts"] == 3 and len(sent[0].data["platform_message_ids"]) == 3
        assert len(watch.of("connector.outbound_sent", message_id=message_id)) == 1
    finally:
        child.stop()
        await watch.stop()
        await bus.close()
        await agent.stop()
