"""A connection that dies without a close (found using it: with the network gone for a
minute the console said "connected" and the widget "Alice is here to help" throughout).
The client pings a quiet socket and gives up one whose ping goes unanswered; the page's
clock is Playwright's, fast-forwarded, so the test waits for no real minute."""

import pytest

from tests.browser.pages import TIMEOUT_MS, console_login, make_tenant

pytestmark = pytest.mark.browser


async def test_a_silently_dead_connection_is_noticed_and_replaced(system, browser) -> None:  # type: ignore[no-untyped-def]
    await make_tenant(system, "silent", "alice")
    context = await browser.new_context()
    await context.clock.install()
    console = await console_login(context, system, "silent", "alice")
    status = console.get_by_role("status").filter(has_text="connected")

    await context.set_offline(True)  # the socket stays open, nothing gets through
    await console.clock.fast_forward(20_000)  # quiet for longer than the heartbeat: a ping
    await console.clock.fast_forward(20_000)  # and no answer to it
    await console.get_by_role("status").filter(has_text="reconnecting").wait_for(timeout=TIMEOUT_MS)

    await context.set_offline(False)
    await console.clock.fast_forward(15_000)  # past the reconnect's backoff
    await status.wait_for(timeout=TIMEOUT_MS)
