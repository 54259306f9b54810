"""The "earlier messages" button of the console and the widget: there only when the chat has
messages before the oldest one shown.

It used to show whenever a page of history came back at all (a page of messages says nothing
of what is before it), so a new chat of two messages offered earlier ones that were not
there, and a chat paged back to its first message kept the button when the last page was a
full one.
"""

from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.pages import (
    TIMEOUT_MS,
    as_boss,
    console_login,
    customer_says,
    make_tenant,
    open_demo,
    start_chat,
    visitor_messages,
    widget,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

SHARES_ONE_SYSTEM = True  # tests/browser/conftest.py

PAGE = 3  # the tenant's messages_on_enter in the paging test


async def stored_positions(page: Any, system: Any, tenant: str, upto: int) -> list[int]:
    """The log positions of the messages of the widget's conversation, as history answers
    them once it holds the log up to ``upto``."""
    return [item["position"] for item in await visitor_messages(page, system, tenant, upto)]


async def drawn_positions(lines: Any) -> list[int]:
    positions: list[int] = await lines.evaluate_all(
        "(nodes) => nodes.map((node) => Number(node.dataset.position))"
    )
    return positions


async def accept_in_console(console: Any, name: str) -> Any:
    """The agent accepts ``name``'s request in the console; returns the chat's message log."""
    request = console.locator(".request").filter(has_text=name)
    await request.get_by_role("button", name="Accept").click()
    await request.wait_for(state="detached", timeout=TIMEOUT_MS)
    return console.get_by_role("log", name="Messages")


async def test_a_new_chat_offers_no_earlier_messages(system, browser) -> None:
    """Two messages, well under a page (``messages_on_enter``, 50): no button in the console
    when the chat opens or after a reload, nor in the widget after a reload."""
    await make_tenant(system, "fewlines", "alice")
    console = await console_login(await browser.new_context(), system, "fewlines", "alice")
    demo = await open_demo(await browser.new_context(), system, "fewlines")
    chat = widget(demo)
    await start_chat(demo, "Nina")
    await customer_says(demo, "Hello")
    await customer_says(demo, "Is anyone there?")
    log = await accept_in_console(console, "Nina")
    # Said before the chat was accepted: the console draws them from the history read.
    await expect(log.get_by_text("Is anyone there?")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(log.locator(".msg").filter(has_text="Hello")).to_be_visible()
    await expect(console.locator("#earlier")).to_be_hidden()

    await console.reload()
    await expect(log.get_by_text("Is anyone there?")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(console.locator("#earlier")).to_be_hidden()

    await demo.reload()
    await expect(chat.locator(".msg").filter(has_text="Is anyone there?")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    await expect(chat.locator(".msg").filter(has_text="Hello")).to_be_visible()
    await expect(chat.locator(".earlier")).to_be_hidden()


async def test_earlier_messages_page_back_to_the_first_message_and_go(system, browser) -> None:
    """A chat of whole pages (the last one full too): each click draws the page before, above
    and in log order, the button stays while there is more and goes with the chat's first
    message on screen. In the console (the chat opened, then after a reload) and in the
    widget (after a reload)."""
    tenant = "manylines"
    await make_tenant(system, tenant, "alice")
    await as_boss(system, tenant, "PATCH", "/api/admin/settings", {"messages_on_enter": PAGE})
    console = await console_login(await browser.new_context(), system, tenant, "alice")
    demo = await open_demo(await browser.new_context(), system, tenant)
    await start_chat(demo, "Pia")
    await customer_says(demo, "Line 1")
    log = await accept_in_console(console, "Pia")
    entered = log.locator(".system-line").filter(has_text="has entered the chat")
    await expect(entered).to_be_visible(timeout=TIMEOUT_MS)
    so_far = len(await stored_positions(demo, system, tenant, await position_of(entered)))
    # As many more lines as make whole pages, three at least: a full last page is where a
    # page's length cannot tell whether it reached the first message.
    more = next(
        k for k in range(1, 5 * PAGE) if (so_far + k) % PAGE == 0 and so_far + k >= 3 * PAGE
    )
    for n in range(2, 2 + more):
        await customer_says(demo, f"Line {n}")
    last = log.locator(".msg").filter(has_text=f"Line {1 + more}")
    await expect(last).to_be_visible(timeout=TIMEOUT_MS)
    everything = await stored_positions(demo, system, tenant, await position_of(last))
    assert len(everything) % PAGE == 0 and len(everything) >= 3 * PAGE, everything

    # A second console of the agent's (reloading the first would tell the customer the agent
    # lost their connection and is back: two more messages).
    second = await console_login(await browser.new_context(), system, tenant, "alice")
    await second.locator("[data-conversation]").filter(has_text="Pia").click()
    log = second.get_by_role("log", name="Messages")
    lines = log.locator(".msg, .system-line")
    button = log.get_by_role("button", name="Load earlier messages")
    await page_back(lines, button, everything, clicks=1)
    await second.reload()
    await page_back(lines, button, everything)

    chat = widget(demo)
    await demo.reload()
    lines = chat.locator(".log").locator(".msg, .system")
    await page_back(lines, chat.get_by_role("button", name="Earlier messages"), everything)


async def position_of(line: Any) -> int:
    return int(await line.get_attribute("data-position"))


async def page_back(lines: Any, button: Any, everything: list[int], clicks: int = -1) -> None:
    """From the first page of a chat just opened (the last ``PAGE`` messages), "earlier"
    ``clicks`` times (or until the chat's first message is on screen), checking the log and
    the button after each page."""
    for shown in range(PAGE, len(everything) + 1, PAGE):
        await expect(lines).to_have_count(shown, timeout=TIMEOUT_MS)
        # the page before drawn above, in log order, nothing twice
        assert await drawn_positions(lines) == everything[-shown:]
        if shown == len(everything):
            break
        await expect(button).to_be_visible()
        if not clicks:
            return
        clicks -= 1
        await button.click()
    # the chat's first message is on screen: nothing before it to load
    await expect(button).to_be_hidden()
