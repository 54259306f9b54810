"""Request cards and accepting, with the history read model behind the log.

The console used to take a card's name, and whether a chat is "mine", from the history read
model; with history behind the log (here: stopped, the extreme of a lagging read model) the
card read "Visitor" and an accepted chat opened as a dead end: title "Visitor", no status,
no composer, nothing under "Mine". Offers, chats and the queue now come from routing (the
single writer) and the accept's reply opens the chat at once. The card's waiting time ticks
in place: keyboard focus on Accept survives it (the list used to be rebuilt every second).
"""

import pytest

from history_service.service import HistoryService
from tests.browser.pages import TIMEOUT_MS, console_login, make_tenant, open_demo, start_chat

pytestmark = pytest.mark.browser


async def test_cards_and_accept_come_from_routing_while_history_lags(system, browser) -> None:  # type: ignore[no-untyped-def]
    await make_tenant(system, "lagging", "alice")
    console = await console_login(await browser.new_context(), system, "lagging", "alice")
    history = next(s for s in system.services if isinstance(s, HistoryService))
    await history.stop()  # the read models stop following the log from here on

    demo = await open_demo(await browser.new_context(), system, "lagging")
    await start_chat(demo, "Quinn", topic="Returns")

    card = console.locator(".request").filter(has_text="Quinn")
    await card.wait_for(timeout=TIMEOUT_MS)
    assert "Returns" in await card.inner_text()

    # The waiting time ticks while Accept has keyboard focus: the focus stays on it.
    accept = card.get_by_role("button", name="Accept")
    await accept.focus()
    wait = card.locator(".wait")
    await console.wait_for_function(
        "([node, before]) => node.textContent !== before",
        arg=[await wait.element_handle(), await wait.inner_text()],
        timeout=TIMEOUT_MS,
    )
    assert await accept.evaluate("button => document.activeElement === button")

    # Accepting from the keyboard opens the chat at once: name, status, composer, "Mine".
    await console.keyboard.press("Enter")
    await console.locator("#chat-title").filter(has_text="Quinn").wait_for(timeout=TIMEOUT_MS)
    await console.locator("#chat-status").filter(has_text="engaged").wait_for(timeout=TIMEOUT_MS)
    await console.get_by_label("Reply").wait_for(timeout=TIMEOUT_MS)
    mine = console.get_by_role("tabpanel", name="Conversation list")
    await mine.get_by_role("button").filter(has_text="Quinn").wait_for(timeout=TIMEOUT_MS)
