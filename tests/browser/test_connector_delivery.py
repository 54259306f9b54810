"""The console shows, under an agent's reply to a Telegram chat, whether Telegram took it."""

import pytest

from relaydesk.bus import Bus
from tests.browser.pages import TIMEOUT_MS, agent_says, console_login, make_tenant
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.harness import TelegramDriver, system_with_connectors

pytestmark = pytest.mark.browser
TELEGRAM_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"


async def test_console_shows_sent_via_telegram_and_the_failure_reason(
    settings, bus: Bus, browser, artifacts
) -> None:
    fake = FakeTelegram(TELEGRAM_TOKEN)
    await fake.start()
    try:
        connected = settings.model_copy(
            update={"connectors_port": 0, "telegram_api_base": fake.base_url}
        )
        async with system_with_connectors(connected) as (system, connectors):
            await make_tenant(system, "tg", "alice")
            driver = TelegramDriver(fake, connectors)
            assert (await driver.setup(bus, "tg")).ok
            console = await console_login(await browser.new_context(), system, "tg", "alice")
            assert (await driver.send("91", "where is my parcel?")).status_code == 200
            await console.locator(".request").get_by_role("button", name="Accept").click()
            log = console.get_by_role("log", name="Messages")
            await log.get_by_text("where is my parcel?").wait_for(timeout=TIMEOUT_MS)

            await agent_says(console, "On its way <b>today</b>")
            delivered = log.locator(".msg.agent").filter(has_text="On its way")
            await (
                delivered.locator(".delivery")
                .filter(has_text="sent via Telegram")
                .wait_for(timeout=TIMEOUT_MS)
            )

            fake.token_revoked = True  # Telegram answers 401 from now on: a permanent failure
            await agent_says(console, "Tracking number follows")
            refused = (
                log.locator(".msg.agent")
                .filter(has_text="Tracking number follows")
                .locator(".delivery.failed")
            )
            await refused.filter(has_text="failed: 401").wait_for(timeout=TIMEOUT_MS)
            # each result sits under its own message only
            assert await delivered.locator(".delivery").inner_text() == "sent via Telegram"
            assert fake.sent == [{"chat_id": 91, "text": "On its way <b>today</b>"}]

            # The refused reply is parked, not dropped: once the token works again, "retry"
            # sends it.
            fake.token_revoked = False
            await refused.get_by_role("button", name="retry").click()
            retried = log.locator(".msg.agent").filter(has_text="Tracking number follows")
            await (
                retried.locator(".delivery")
                .filter(has_text="sent via Telegram")
                .wait_for(timeout=TIMEOUT_MS)
            )
            assert [m["text"] for m in fake.sent][-1] == "Tracking number follows"
            assert await log.locator(".msg b").count() == 0  # the body is text, never HTML
            await console.screenshot(path=str(artifacts / "console-delivery-state.png"))
    finally:
        await fake.stop()
