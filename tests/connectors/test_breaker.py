"""Circuit breaker: a failing platform is left alone while the other connectors keep sending."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import structlog.testing

from agent_service.service import AgentService
from connectors.deliverer import ATTEMPTS_PER_ROUND
from connectors.service import ConnectorsService
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.connectors.contract import TENANT
from tests.connectors.fakes.messenger import FakeMessenger
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.harness import MessengerDriver, TelegramDriver
from tests.connectors.helpers import LogWatch, agent_reply, eventually

FAILURES_TO_OPEN = 2
OPEN_S = 1.0
PROMPT_S = 1.5  # a healthy platform's reply goes out within this, whatever the other one does


@pytest.fixture
async def service(
    connector_settings: Settings, agent_service: AgentService
) -> AsyncIterator[ConnectorsService]:
    fast = connector_settings.model_copy(
        update={"connector_breaker_failures": FAILURES_TO_OPEN, "connector_breaker_open_s": OPEN_S}
    )
    started = ConnectorsService(fast)
    await started.start()
    yield started
    await started.stop()


async def _conversation(
    driver: TelegramDriver | MessengerDriver, user: str, watch: LogWatch
) -> str:
    assert (await driver.send(user, f"hello from {driver.platform}")).status_code == 200
    received = await watch.wait_for("connector.inbound_received", platform=driver.platform)
    return str(received[0].data["conversation_id"])


def _count(logs: list[dict[str, object]], event: str) -> int:
    return sum(e["event"] == event for e in logs)


async def _reply_promptly(bus: Bus, watch: LogWatch, conversation_id: str, body: str) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    message_id = await agent_reply(bus, TENANT, conversation_id, body)
    await watch.wait_for("connector.outbound_sent", message_id=message_id, timeout=PROMPT_S)
    assert loop.time() - started < PROMPT_S


async def test_failing_platform_opens_its_breaker_blocks_nobody_and_gets_its_replies_once(
    fake_telegram: FakeTelegram,
    fake_messenger: FakeMessenger,
    service: ConnectorsService,
    bus: Bus,
    watch: LogWatch,
) -> None:
    telegram, messenger = (
        TelegramDriver(fake_telegram, service),
        MessengerDriver(fake_messenger, service),
    )
    assert (await telegram.setup(bus, TENANT)).ok and (await messenger.setup(bus, TENANT)).ok
    tg_conv = await _conversation(telegram, "501", watch)
    fb_conv = await _conversation(messenger, "psid-b", watch)

    with structlog.testing.capture_logs() as logs:
        fake_messenger.down = True  # Graph answers 500, code 2
        fb_ids = [await agent_reply(bus, TENANT, fb_conv, f"fb-{i}") for i in (1, 2)]
        await _reply_promptly(bus, watch, tg_conv, "tg-1")  # while Messenger's worker retries

        await eventually(
            lambda: service.breaker_state("fb1") == "open",
            timeout=10,
            what="Messenger's breaker open",
        )
        assert (
            len(fake_messenger.calls) == FAILURES_TO_OPEN * ATTEMPTS_PER_ROUND
        )  # the rounds that opened it, nothing more
        assert service.breaker_state("tg1") == "closed"
        fb_ids.append(await agent_reply(bus, TENANT, fb_conv, "fb-3"))
        await _reply_promptly(bus, watch, tg_conv, "tg-2")  # while Messenger's breaker is open

        # Half-open after OPEN_S: one trial round, still failing, so the breaker opens again now.
        opening_rounds = FAILURES_TO_OPEN * ATTEMPTS_PER_ROUND
        await eventually(
            lambda: (
                len(fake_messenger.calls) == opening_rounds + ATTEMPTS_PER_ROUND
                and service.breaker_state("fb1") == "open"
            ),
            timeout=5,
            what="a failed half-open trial",
        )
        assert (
            fake_messenger.calls[opening_rounds] - fake_messenger.calls[opening_rounds - 1]
            >= OPEN_S
        )  # nothing was sent while open
        assert (
            _count(logs, "connector_breaker_half_open") == 1
            and _count(logs, "connector_breaker_opened") == 2
        )

        # The next trial finds the platform refusing connections: open again, no request seen.
        await fake_messenger.cut()
        await eventually(
            lambda: _count(logs, "connector_breaker_opened") == 3,
            timeout=5,
            what="a trial against refused connections",
        )
        assert (
            service.breaker_state("fb1") == "open"
            and len(fake_messenger.calls) == opening_rounds + ATTEMPTS_PER_ROUND
        )
        await _reply_promptly(bus, watch, tg_conv, "tg-3")

        fake_messenger.down = False
        await fake_messenger.restore()  # back: the next half-open trial delivers the whole queue
        for message_id in fb_ids:
            await watch.wait_for("connector.outbound_sent", message_id=message_id, timeout=10)

    assert messenger.delivered() == ["fb-1", "fb-2", "fb-3"]  # in order, each exactly once
    assert telegram.delivered() == ["tg-1", "tg-2", "tg-3"]
    assert service.breaker_state("fb1") == "closed"
    for message_id in fb_ids:
        assert len(watch.of("connector.outbound_sent", message_id=message_id)) == 1
    # one transient report for the reply at the head of the queue; those behind it were never tried
    failed = watch.of("connector.outbound_failed")
    assert [(e.data["message_id"], e.data["permanent"]) for e in failed] == [(fb_ids[0], False)]
    assert failed[0].data["reason"].startswith("2/")
    assert all(
        e["connector_id"] == "fb1" for e in logs if e["event"].startswith("connector_breaker_")
    )
    assert [e["event"] for e in logs if e["event"].startswith("connector_breaker_")][
        -1
    ] == "connector_breaker_closed"
