"""A connection that dies without a close (found using it: with the network gone for a
minute the console said "connected" and the widget "Alice is here to help" throughout, and
a reply the agent sent meanwhile left the composer and showed nowhere). The client pings a
quiet socket and gives up one whose ping goes unanswered; a reply waiting in the outbox is
shown greyed until its event comes. The console's clock is Playwright's, fast-forwarded,
so the test waits for no real minute."""

import pytest

from tests.browser.pages import (
    TIMEOUT_MS,
    console_login,
    customer_says,
    make_tenant,
    open_demo,
    start_chat,
    widget,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

SHARES_ONE_SYSTEM = True  # tests/browser/conftest.py


async def test_a_silently_dead_connection_is_noticed_and_what_was_sent_arrives_once(  # type: ignore[no-untyped-def]
    system, browser
) -> None:
    await make_tenant(system, "silent", "alice")
    context = await browser.new_context()
    await context.clock.install()
    console = await console_login(context, system, "silent", "alice")
    demo = await open_demo(await browser.new_context(), system, "silent")
    await start_chat(demo, "Sam")
    await customer_says(demo, "Is anyone there?")
    await console.locator(".request").get_by_role("button", name="Accept").click()
    log = console.get_by_role("log", name="Messages")
    await log.get_by_text("Is anyone there?").wait_for(timeout=TIMEOUT_MS)

    await context.set_offline(True)  # the socket stays open, nothing gets through
    reply = console.get_by_label("Reply")
    await reply.fill("Yes, Alice here")
    await reply.press("Enter")
    await (
        log.locator(".msg.pending").filter(has_text="Yes, Alice here").wait_for(timeout=TIMEOUT_MS)
    )
    await console.clock.fast_forward(20_000)  # quiet for longer than the heartbeat: a ping
    await console.clock.fast_forward(20_000)  # and no answer to it
    await console.get_by_role("status").filter(has_text="reconnecting").wait_for(timeout=TIMEOUT_MS)

    await context.set_offline(False)
    await console.clock.fast_forward(15_000)  # past the reconnect's backoff
    await console.get_by_role("status").filter(has_text="connected").wait_for(timeout=TIMEOUT_MS)
    await widget(demo).get_by_text("Yes, Alice here").wait_for(timeout=TIMEOUT_MS)
    sent = log.locator(".msg.agent").filter(has_text="Yes, Alice here")
    await log.locator(".msg.pending").wait_for(state="detached", timeout=TIMEOUT_MS)
    assert await sent.count() == 1
