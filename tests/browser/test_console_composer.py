"""The console's composer across conversations (found using it): a reply typed for one
customer followed the agent into another chat (Enter sent it there), and the first
customer's "is typing…" never ended (the stop went to the chat opened next). A draft now
stays with its conversation, and leaving a chat ends typing in it."""

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


async def test_a_draft_stays_with_its_conversation_and_leaving_ends_typing(system, browser) -> None:  # type: ignore[no-untyped-def]
    await make_tenant(system, "drafts", "alice")
    console = await console_login(await browser.new_context(), system, "drafts", "alice")
    customers = {}
    for name in ("Avery", "Blake"):
        demo = await open_demo(await browser.new_context(), system, "drafts")
        await start_chat(demo, name)
        await customer_says(demo, f"Hello from {name}")
        card = console.locator(".request").filter(has_text=name)
        await card.get_by_role("button", name="Accept").click()
        await console.locator("#chat-title").filter(has_text=name).wait_for(timeout=TIMEOUT_MS)
        customers[name] = demo
    mine = console.get_by_role("tabpanel", name="Conversation list")
    reply = console.get_by_label("Reply")

    await mine.get_by_role("button").filter(has_text="Avery").click()
    await console.locator("#chat-title").filter(has_text="Avery").wait_for(timeout=TIMEOUT_MS)
    await reply.press_sequentially("Dear Avery, order 111 ships")
    avery_typing = widget(customers["Avery"]).locator(".typing")
    await avery_typing.filter(has_text="typing").wait_for(timeout=TIMEOUT_MS)

    await mine.get_by_role("button").filter(has_text="Blake").click()
    await console.locator("#chat-title").filter(has_text="Blake").wait_for(timeout=TIMEOUT_MS)
    await customers["Avery"].wait_for_function(
        "() => !document.querySelector('#relaydesk-widget').shadowRoot"
        ".querySelector('.typing').textContent.includes('typing')",
        timeout=TIMEOUT_MS,
    )
    assert await reply.input_value() == ""  # Enter here must not send Avery's reply to Blake

    await mine.get_by_role("button").filter(has_text="Avery").click()
    await console.locator("#chat-title").filter(has_text="Avery").wait_for(timeout=TIMEOUT_MS)
    assert await reply.input_value() == "Dear Avery, order 111 ships"
    await reply.press("Enter")
    await (
        widget(customers["Avery"])
        .get_by_text("Dear Avery, order 111 ships")
        .wait_for(timeout=TIMEOUT_MS)
    )
    assert "order 111" not in await widget(customers["Blake"]).locator(".log").inner_text()
