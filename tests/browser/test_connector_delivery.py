"""The console shows, under an agent's reply to a Telegram chat, whether Telegram took it;
and what the Telegram user sent besides text: a photo with its caption, an edit, a block,
their profile picture."""

import contextlib
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import expect

from relaydesk.bus import Bus
from relaydesk.settings import Settings
from tests.browser.pages import TIMEOUT_MS, agent_says, console_login, make_tenant
from tests.connectors.fakes.telegram import FakeTelegram
from tests.connectors.harness import TelegramDriver, system_with_connectors
from tests.system import history_held

pytestmark = pytest.mark.browser
TELEGRAM_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"


def png(width: int, height: int) -> bytes:
    """A valid PNG (grey pixels) the browser can draw."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@contextlib.asynccontextmanager
async def with_telegram(settings: Settings) -> AsyncIterator[tuple[FakeTelegram, Any, Any]]:
    """Telegram's fake, and the whole system with the connectors service talking to it."""
    fake = FakeTelegram(TELEGRAM_TOKEN)
    await fake.start()
    try:
        connected = settings.model_copy(
            update={"connectors_port": 0, "telegram_api_base": fake.base_url}
        )
        async with system_with_connectors(connected) as (system, connectors):
            yield fake, system, connectors
    finally:
        await fake.stop()


async def test_console_shows_sent_via_telegram_and_the_failure_reason(
    settings, bus: Bus, browser, artifacts
) -> None:
    async with with_telegram(settings) as (fake, system, connectors):
        await make_tenant(system, "tg", "alice")
        driver = TelegramDriver(fake, connectors)
        assert (await driver.setup(bus, "tg")).ok
        console = await console_login(await browser.new_context(), system, "tg", "alice")
        fake.profile_photos[91] = [fake.add_file(png(64, 64), "profile_photos/91.png")]
        # History's read models held behind the log while the chat is requested and
        # accepted: the visitor panel, painted once when the chat opens, took the profile
        # picture from history only, and under load it was missing for good.
        with history_held(system):
            first = fake.update(91, "where is my parcel?")
            posted = await fake.post_webhook(driver.url, first, driver.secret)
            assert posted.status_code == 200
            await console.locator(".request").get_by_role("button", name="Accept").click()
            avatar = console.locator("#visitor img.avatar")
            await avatar.wait_for(timeout=TIMEOUT_MS)  # from the request the console saw
        log = console.get_by_role("log", name="Messages")
        await log.get_by_text("where is my parcel?").wait_for(timeout=TIMEOUT_MS)
        # labelled with the name Telegram gives with the message (in a group, each
        # member's own), not "Visitor" for everyone
        asked = log.locator(".msg.customer").filter(has_text="where is my parcel?")
        assert await asked.locator(".meta").inner_text() == "Ann"

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
        # the greeting and the join line went to the user before the reply
        texts = [m["text"] for m in fake.sent]
        assert texts[0] == "Hi! How can we help?" and texts[2:] == ["On its way <b>today</b>"]

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

        # what else the user does reaches the console: a photo with its caption, an edit
        # of their first message, blocking the bot
        fake.token_revoked = False  # the files are fetched with the bot token

        # Telegram refuses one reply (not the bot): the reply after it waits behind it,
        # without a retry of its own, and the refused one's retry says it sends both.
        fake.refuse_sends = [(400, "Bad Request: chat not found")]
        await agent_says(console, "Your parcel is at the depot")
        await agent_says(console, "It leaves at noon")
        replies = log.locator(".msg.agent")
        head = replies.filter(has_text="at the depot").locator(".delivery")
        behind = replies.filter(has_text="leaves at noon").locator(".delivery")
        await behind.filter(has_text="waiting behind an earlier reply").wait_for(timeout=TIMEOUT_MS)
        assert await behind.get_by_role("button").count() == 0
        retry = head.get_by_role("button", name="retry (and the 1 waiting behind it)")
        await retry.click()
        await behind.filter(has_text="sent via Telegram").wait_for(timeout=TIMEOUT_MS)
        assert await head.inner_text() == "sent via Telegram"
        assert [m["text"] for m in fake.sent][-2:] == [
            "Your parcel is at the depot",
            "It leaves at noon",
        ]

        photo = fake.photo_update(91, fake.add_file(png(8, 8), "photos/91.png"), "the box")
        edit = fake.edit_update(91, first["message"]["message_id"], "where is my parcel #42?")
        for update in (photo, edit, fake.member_update(91, "kicked")):
            assert (await fake.post_webhook(driver.url, update, driver.secret)).status_code == 200
        sent_photo = log.locator(".msg.customer").filter(has_text="the box")
        await sent_photo.get_by_role("button", name="photo_").wait_for(timeout=TIMEOUT_MS)
        original = log.locator(".msg.customer").filter(has_text="where is my parcel?")
        await original.locator(".edited").filter(has_text="#42").wait_for(timeout=TIMEOUT_MS)
        await log.get_by_text("The customer blocked us on Telegram").wait_for(timeout=TIMEOUT_MS)
        assert await avatar.evaluate("img => img.complete && img.naturalWidth") == 64
        await console.screenshot(path=str(artifacts / "console-telegram-media.png"))


async def test_an_owner_connects_a_telegram_bot_by_polling_from_the_admin_page(
    settings, browser
) -> None:
    # The form offered only webhook mode (a bare "bot_token (secret)" field and no mode), so
    # an installation without a public https address could not connect a bot from its pages.
    async with with_telegram(settings) as (fake, system, _):
        await make_tenant(system, "poll", "alice")
        context = await browser.new_context()
        admin = await context.new_page()
        await admin.goto(f"{system.gateway.base_url}/admin?tenant=poll#connectors")
        await admin.get_by_label("Email").fill("boss@poll.test")
        await admin.get_by_label("Password").fill("boss-secret-pw")
        await admin.get_by_role("button", name="Sign in").click()
        await admin.get_by_label("Connector id").fill("poll-bot")
        await expect(admin.locator("#connector-hint")).to_contain_text("choose polling")
        await admin.get_by_label("Updates by").select_option("polling")
        await admin.get_by_label("Bot token (from @BotFather)").fill(TELEGRAM_TOKEN)
        await admin.get_by_role("button", name="Save connector").click()
        await expect(admin.get_by_role("cell", name="poll-bot")).to_be_visible(timeout=TIMEOUT_MS)

        console = await console_login(await browser.new_context(), system, "poll", "alice")
        await fake.queue_update(fake.update(77, "do you ship to Oslo?", first_name="Ola"))
        offer = console.locator(".request").filter(has_text="Ola")
        await offer.get_by_role("button", name="Accept").click(timeout=TIMEOUT_MS)
        log = console.get_by_role("log", name="Messages")
        await expect(log.get_by_text("do you ship to Oslo?")).to_be_visible(timeout=TIMEOUT_MS)
        # polled, with no webhook set (a polling bot's is deleted before its first poll)
        assert fake.getupdates_calls > 0
        assert [method for _, method, _ in fake.webhook_calls] == ["deleteWebhook"]
