"""The connectors process SIGKILLed in the middle of sending an agent's files: after a restart
every file and the reply behind them reach the user, in order, each once.

The connectors run as their own OS process (``relaydesk connectors``): a kill there leaves no
``finally``, no flush; they restart in the test's process. The fake Telegram holds the first
file upload until the process is dead, then fails it (the request died with its sender, as a
cut connection does).
"""

from pathlib import Path

import pytest

from connectors.service import ConnectorsService
from relaydesk.attachments import AttachmentStore
from relaydesk.bus import Bus
from relaydesk.sealing import SecretBox
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.harness import configure
from tests.connectors.helpers import LogWatch, agent_attachment, agent_reply, eventually
from tests.connectors.test_media import JPEG, PDF, PNG
from tests.fault.processes import ServiceProcess
from tools.embedded import free_port

TENANT = "acme"  # quiet (tests/connectors/conftest.py): only agents' messages reach the user


async def test_files_survive_a_killed_connectors_process_in_order(
    connector_settings: Settings,
    agent_service: object,
    fake_telegram: FakeTelegram,
    bus: Bus,
    watch: LogWatch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "RELAYDESK_TELEGRAM_API_BASE": fake_telegram.base_url,
        "RELAYDESK_CONNECTORS_PORT": str(free_port()),
    }.items():
        monkeypatch.setenv(name, value)
    connectors = await ServiceProcess("connectors", connector_settings, tmp_path).start()
    mongo = make_client(connector_settings.mongo_url or "")
    try:
        box = SecretBox.from_settings(connector_settings)  # the child's key
        assert (
            await configure(
                bus,
                box,
                TENANT,
                "tg-crash",
                "telegram",
                {"mode": "polling"},
                {"bot_token": fake_telegram.token},
                timeout=30,
            )
        ).ok
        await fake_telegram.queue_update(fake_telegram.update(701, "please send the documents"))
        [received] = await watch.wait_for("connector.inbound_received", timeout=30)
        conversation_id = received.data["conversation_id"]

        files = AttachmentStore(database(mongo, connector_settings.mongo_db))
        fake_telegram.hold_files = True
        sent = [
            await agent_attachment(bus, files, TENANT, conversation_id, "a.png", "image/png", PNG),
            await agent_attachment(
                bus, files, TENANT, conversation_id, "b.pdf", "application/pdf", PDF
            ),
            await agent_attachment(
                bus, files, TENANT, conversation_id, "c.jpg", "image/jpeg", JPEG
            ),
            await agent_reply(bus, TENANT, conversation_id, "that is all of them"),
        ]
        await eventually(lambda: fake_telegram.held == 1, timeout=30, what="a.png upload held")
        connectors.kill()  # mid-upload: the outbox has all four, none marked sent
        fake_telegram.cut_held = True
        fake_telegram.release_files()
        await eventually(lambda: fake_telegram.held == 0, what="the dead upload answered")
        fake_telegram.cut_held = False

        # the restart may as well be in this process (one child start less): what matters is
        # what the killed one left in the outbox and the log
        restarted = ConnectorsService(connector_settings)
        await restarted.start()
        try:
            for message_id in sent:
                await watch.wait_for("connector.outbound_sent", message_id=message_id, timeout=30)
        finally:
            await restarted.stop()
        assert [
            (m["method"], m.get("filename") or m.get("text"))
            for m in fake_telegram.sent
            if m["chat_id"] == 701
        ] == [
            ("sendPhoto", "a.png"),
            ("sendDocument", "b.pdf"),
            ("sendPhoto", "c.jpg"),
            ("sendMessage", "that is all of them"),
        ]
        assert [m["content"] for m in fake_telegram.sent if "content" in m] == [PNG, PDF, JPEG]
        for message_id in sent:  # each reported once
            assert len(watch.of("connector.outbound_sent", message_id=message_id)) == 1
    finally:
        connectors.stop()
        await mongo.close()
