"""A customer in the widget and an agent in the console, in two browser contexts."""

import asyncio

import pytest

from tests.browser.pages import (
    TIMEOUT_MS,
    add_canned,
    agent_says,
    console_login,
    customer_says,
    make_tenant,
    open_demo,
    start_chat,
    widget,
)

pytestmark = pytest.mark.browser


async def test_whole_conversation_from_request_to_rating(system, browser, artifacts) -> None:
    await make_tenant(system, "shop", "alice")
    await add_canned(system, "shop", "thanks", "Thanks for reaching out! Happy to help.")
    agent_context, customer_context = await browser.new_context(), await browser.new_context()
    console = await console_login(agent_context, system, "shop", "alice")
    demo = await open_demo(customer_context, system, "shop")
    chat = widget(demo)

    await start_chat(demo, "Dana", topic="Returns")
    await customer_says(demo, "Hello, my tent pole snapped")
    request = console.locator(".request").filter(has_text="Dana")
    await request.wait_for(timeout=TIMEOUT_MS)
    assert "Returns" in await request.inner_text()

    # The chat's history loads slowly (held here until a live message was drawn): the console
    # still shows the conversation in log order, the live message last.
    log = console.get_by_role("log", name="Messages")
    live_drawn = asyncio.Event()

    async def slow_history(route) -> None:  # type: ignore[no-untyped-def]
        await live_drawn.wait()
        await route.continue_()

    await console.route("**/api/conversations/*/messages", slow_history)
    await request.get_by_role("button", name="Accept").click()
    await request.wait_for(state="detached", timeout=TIMEOUT_MS)
    await console.get_by_label("Reply").wait_for(timeout=TIMEOUT_MS)
    await customer_says(demo, "Are you there?")
    await log.get_by_text("Are you there?").wait_for(timeout=TIMEOUT_MS)
    live_drawn.set()
    await log.get_by_text("Hello, my tent pole snapped").wait_for(timeout=TIMEOUT_MS)
    await console.unroute("**/api/conversations/*/messages")
    lines = await log.locator(".msg, .system-line").all_inner_texts()
    order = [
        next(i for i, line in enumerate(lines) if text in line)
        for text in (
            "How can we help",
            "Hello, my tent pole snapped",
            "has entered the chat",
            "Are you there?",
        )
    ]
    assert order == sorted(order), lines
    await chat.get_by_text("is here to help").wait_for(timeout=TIMEOUT_MS)

    # Typing shows on the other side, then the canned response goes out from "/".
    reply = console.get_by_label("Reply")
    await reply.fill("/than")
    option = console.get_by_role("option").filter(has_text="/thanks")
    await option.wait_for(timeout=TIMEOUT_MS)
    await chat.get_by_text("Agent is typing").wait_for(timeout=TIMEOUT_MS)
    await reply.press("Enter")
    assert await reply.input_value() == "Thanks for reaching out! Happy to help."
    await reply.press("Enter")
    await (
        chat.get_by_role("log")
        .get_by_text("Thanks for reaching out! Happy to help.")
        .wait_for(timeout=TIMEOUT_MS)
    )

    await agent_says(console, "Which model is it?")
    await chat.get_by_text("Which model is it?").wait_for(timeout=TIMEOUT_MS)
    await customer_says(demo, "The Alpine 2")
    await log.get_by_text("The Alpine 2").wait_for(timeout=TIMEOUT_MS)
    # The widget had the panel open, so the agent's messages were read: the customer's own show
    # "Read" after the agent reads.
    await chat.locator(".receipt").wait_for(timeout=TIMEOUT_MS)

    await demo.screenshot(path=str(artifacts / "widget-conversation.png"))
    await console.screenshot(path=str(artifacts / "console-conversation.png"))

    await console.get_by_role("button", name="Close").click()
    await chat.get_by_role("button", name="4 stars").click()
    await chat.get_by_label("Comment").fill("quick and kind")
    await chat.get_by_role("button", name="Send rating").click()
    await chat.get_by_text("Thank you for your feedback!").wait_for(timeout=TIMEOUT_MS)

    # Every message appears exactly once on both sides.
    for text in (
        "Hello, my tent pole snapped",
        "Are you there?",
        "Which model is it?",
        "The Alpine 2",
        "Thanks for reaching out! Happy to help.",
    ):
        assert await chat.locator(".msg").filter(has_text=text).count() == 1
        assert await log.locator(".msg").filter(has_text=text).count() == 1
    await demo.screenshot(path=str(artifacts / "widget-rating.png"))


async def test_script_in_a_message_shows_as_text(system, browser) -> None:
    await make_tenant(system, "xss", "alice")
    console = await console_login(await browser.new_context(), system, "xss", "alice")
    demo = await open_demo(await browser.new_context(), system, "xss")
    alarms: list[str] = []
    for page in (console, demo):
        page.on("dialog", lambda dialog: (alarms.append(dialog.message), dialog.dismiss()))
    await start_chat(demo, "<img src=x onerror=alert(1)>")
    payload = "<script>alert('pwned')</script><b>bold?</b>"
    await customer_says(demo, payload)
    await console.locator(".request").get_by_role("button", name="Accept").click()
    log = console.get_by_role("log", name="Messages")
    shown = log.locator(".msg").filter(has_text="alert('pwned')")
    await shown.wait_for(timeout=TIMEOUT_MS)
    assert payload in await shown.inner_text()
    assert await log.locator("script, b").count() == 0
    assert await widget(demo).locator(".log script, .log b").count() == 0
    assert "<img src=x onerror=alert(1)>" in await console.locator("#chat-title").inner_text()
    assert alarms == []

    # A second chat opens; the first one's new message counts as unread, also after a reload
    # (the read position is on the log, not in the page).
    other = await open_demo(await browser.new_context(), system, "xss")
    await start_chat(other, "Lee")
    await (
        console.locator(".request")
        .filter(has_text="Lee")
        .get_by_role("button", name="Accept")
        .click()
    )
    await console.locator("#chat-title").filter(has_text="Lee").wait_for(timeout=TIMEOUT_MS)
    await customer_says(demo, "still waiting here")
    first = console.locator("#conversations button").filter(has_text="onerror")
    await first.get_by_label("1 unread").wait_for(timeout=TIMEOUT_MS)
    await console.reload()
    await console.get_by_role("status").filter(has_text="connected").wait_for(timeout=TIMEOUT_MS)
    await first.get_by_label("1 unread").wait_for(timeout=TIMEOUT_MS)
