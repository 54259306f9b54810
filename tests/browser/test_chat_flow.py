"""A customer in the widget and an agent in the console, in two browser contexts.

The module shares one system and one Chromium (tests/browser/conftest.py); each test has
its own tenants.
"""

import asyncio
from typing import Any

import pytest

from tests.browser.axe import audit_context, describe, serious_violations
from tests.browser.pages import (
    TIMEOUT_MS,
    accept_next,
    add_canned,
    agent_says,
    as_boss,
    console_login,
    customer_says,
    make_tenant,
    online_agent,
    open_demo,
    start_chat,
    widget,
)
from tests.system import history_held
from tools.embedded import free_port

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]


SHARES_ONE_SYSTEM = True  # tests/browser/conftest.py


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
    # and the chat that was open is open again, with its messages (the pane was empty before)
    await console.locator("#chat-title").filter(has_text="Lee").wait_for(timeout=TIMEOUT_MS)
    reopened = console.locator("#conversations button[aria-current=true]")
    assert "Lee" in await reopened.inner_text()
    await console.get_by_label("Reply").wait_for(timeout=TIMEOUT_MS)


async def test_the_widget_has_no_serious_accessibility_violations(system, browser) -> None:
    """axe-core on the widget before, during and after a chat (contrast of the header status
    and End chat failed before)."""
    await make_tenant(system, "axewidget")
    agent = await online_agent(system, "axewidget")
    demo = await open_demo(await audit_context(browser), system, "axewidget")
    chat = widget(demo)
    await chat.get_by_role("button", name="Start chat").wait_for(timeout=TIMEOUT_MS)
    found = {"pre-chat form": await serious_violations(demo)}
    await start_chat(demo, "Ada")
    conversation_id = await accept_next(agent)
    await agent.op("send", conversation_id=conversation_id, body="How can I help?")
    await chat.get_by_text("How can I help?").wait_for(timeout=TIMEOUT_MS)
    await customer_says(demo, "My order is late")
    await chat.locator(".msg.customer:not(.pending)").wait_for(timeout=TIMEOUT_MS)
    found["conversation"] = await serious_violations(demo)
    await agent.op("close", conversation_id=conversation_id)
    await chat.get_by_role("button", name="Send rating").wait_for(timeout=TIMEOUT_MS)
    found["rating"] = await serious_violations(demo)
    await agent.close()
    assert not any(found.values()), "\n".join(
        f"{step}:\n{describe(violations)}" for step, violations in found.items() if violations
    )


async def test_the_console_has_no_serious_accessibility_violations(system, browser) -> None:
    """axe-core on the console with a request waiting, a chat open and the canned responses
    menu (status pills' contrast and list items outside a list failed before)."""
    await make_tenant(system, "axeconsole", "alice")
    console = await console_login(await audit_context(browser), system, "axeconsole", "alice")
    demo = await open_demo(await browser.new_context(), system, "axeconsole")
    await start_chat(demo, "Ben")
    await customer_says(demo, "Is the tent in stock?")
    request = console.locator(".request").filter(has_text="Ben")
    await request.wait_for(timeout=TIMEOUT_MS)
    found = {"request waiting": await serious_violations(console)}
    await request.get_by_role("button", name="Accept").click()
    await agent_says(console, "Let me check")
    log = console.get_by_role("log", name="Messages")
    await log.locator(".msg.agent:not(.pending)").wait_for(timeout=TIMEOUT_MS)
    await (
        console.locator("#conversations button").filter(has_text="Ben").wait_for(timeout=TIMEOUT_MS)
    )
    found["chat open"] = await serious_violations(console)
    await console.get_by_label("Reply").fill("/nothing-like-this")
    await console.get_by_role("option", name="No canned response matches").wait_for(
        timeout=TIMEOUT_MS
    )
    found["no canned response matches"] = await serious_violations(console)
    assert not any(found.values()), "\n".join(
        f"{step}:\n{describe(violations)}" for step, violations in found.items() if violations
    )


# A customer's shop on another origin, embedding the widget as docs/browser.md says.
SHOP_PAGE = """<!doctype html><html lang="en"><head><title>Shop</title></head><body><main>
<h1>Shop</h1><script src="{gateway}/static/widget.js" data-tenant="{tenant}" async></script>
</main></body></html>"""


async def test_a_site_the_tenant_did_not_allow_is_told_so_and_never_retried(
    system, browser, artifacts
) -> None:
    """Used to show the pre-chat form and "Connection lost, reconnecting…" for ever (the
    refused upgrade reaches the page as a dropped connection)."""
    await make_tenant(system, "fenced")
    await as_boss(
        system, "fenced", "PATCH", "/api/admin/settings", {"allowed_origins": ["https://a.example"]}
    )
    # Another origin than the gateway's (its own pages are always allowed): a port nobody
    # listens on, its page served by Playwright. Chromium counts such a page as public and
    # asks before it reaches loopback (Local Network Access): granted, as for a real shop
    # whose widget is served from the internet.
    shop = f"http://127.0.0.1:{free_port()}"
    context = await browser.new_context(permissions=["local-network-access"])
    page_html = SHOP_PAGE.format(gateway=system.gateway.base_url, tenant="fenced")
    await context.route(
        f"{shop}/**", lambda route: route.fulfill(content_type="text/html", body=page_html)
    )
    page = await context.new_page()
    sockets: list[Any] = []
    page.on("websocket", lambda socket: sockets.append(socket))
    await page.goto(f"{shop}/")
    chat = widget(page)
    await chat.get_by_role("button", name="Open chat").click()
    await chat.get_by_text("This chat is not available on this site.").wait_for(timeout=TIMEOUT_MS)
    assert await chat.get_by_role("button", name="Start chat").is_hidden()
    assert await chat.get_by_text("reconnecting").count() == 0
    assert sockets == [], "the widget opened a socket the gateway refuses"
    await page.screenshot(path=str(artifacts / "widget-blocked-site.png"))


async def chatting_with_rita(system, browser, tenant: str):  # type: ignore[no-untyped-def]
    """A widget whose chat agent Rita (over the protocol) has accepted; her client and the
    demo page."""
    await make_tenant(system, tenant)
    agent = await online_agent(system, tenant, "Rita")
    demo = await open_demo(await browser.new_context(), system, tenant)
    await start_chat(demo, "Ola")
    await accept_next(agent)
    status = widget(demo).get_by_role("status")
    await status.filter(has_text="Rita is here to help").wait_for(timeout=TIMEOUT_MS)
    return agent, demo


async def test_after_a_reload_the_widget_shows_its_status_and_escape_closes_it(
    system, browser
) -> None:
    """The header status was blank after a reload (history holds messages, not the state),
    and Escape did nothing."""
    agent, demo = await chatting_with_rita(system, browser, "reload")
    chat = widget(demo)
    status = chat.get_by_role("status")

    await demo.reload()
    await chat.get_by_label("Your message").wait_for(timeout=TIMEOUT_MS)
    await status.filter(has_text="Rita is here to help").wait_for(timeout=TIMEOUT_MS)

    await chat.get_by_label("Your message").press("Escape")
    await chat.get_by_role("dialog", name="Chat").wait_for(state="hidden", timeout=TIMEOUT_MS)
    open_button = chat.get_by_role("button", name="Open chat")
    assert await open_button.evaluate("button => button.getRootNode().activeElement === button")
    await agent.close()


async def test_an_agent_back_after_a_lost_connection_is_announced_before_writing(
    system, browser
) -> None:
    """The widget said "lost connection" until the returning agent next wrote."""
    agent, demo = await chatting_with_rita(system, browser, "comeback")
    chat = widget(demo)
    status = chat.get_by_role("status")

    await agent.close()  # the test gateway reports a lost connection at once (no window)
    await status.filter(has_text="lost connection").wait_for(timeout=TIMEOUT_MS)
    back = await online_agent(system, "comeback", "Rita")  # their console connects again
    await status.filter(has_text="Rita is here to help").wait_for(timeout=TIMEOUT_MS)
    await chat.get_by_role("log").get_by_text("Rita is back.").wait_for(timeout=TIMEOUT_MS)
    # A reload keeps it (the header came back as "lost connection": the return was not kept)
    await demo.reload()
    await chat.get_by_role("log").get_by_text("Rita is back.").wait_for(timeout=TIMEOUT_MS)
    shown = (await status.inner_text()).lower()  # as styled
    assert "lost connection" not in shown and "rita is here to help" in shown, shown
    await back.close()


async def test_a_reloaded_widget_reads_history_up_to_what_its_socket_saw(system, browser) -> None:
    """The widget read its history without ``upto`` on a reload: with history's read model
    behind the log, an agent's message the socket had shown before the reload was missing
    from the answer, and the socket (resuming after it) never brought it again."""
    await make_tenant(system, "laggingwidget")
    agent = await online_agent(system, "laggingwidget", "Rita")
    demo = await open_demo(await browser.new_context(), system, "laggingwidget")
    chat = widget(demo)
    await start_chat(demo, "Ola")
    conversation_id = await accept_next(agent)

    # History's read model stops following the log (it still answers queries).
    # Released when the block ends: history catches up and the read waiting on it is answered.
    with history_held(system):
        sent = await agent.op("send", conversation_id=conversation_id, body="sent while behind")
        assert sent["t"] == "ack", sent
        # Shown live: the socket's position (kept across the reload) is past it.
        await chat.get_by_text("sent while behind").wait_for(timeout=TIMEOUT_MS)

        async with demo.expect_request(lambda r: "/messages" in r.url) as reading:
            await demo.reload()
        assert "upto=" in (await reading.value).url  # "answer once you hold what I saw"
    await chat.get_by_text("sent while behind").wait_for(timeout=TIMEOUT_MS)
    await agent.close()


async def test_the_rating_card_keeps_the_agents_last_message_in_view(system, browser) -> None:
    """The card appearing under a full log pushed the agent's last words out of view."""
    await make_tenant(system, "rating")
    agent = await online_agent(system, "rating")
    demo = await open_demo(await browser.new_context(), system, "rating")
    chat = widget(demo)
    await start_chat(demo, "Pia")
    conversation_id = await accept_next(agent)
    await asyncio.gather(  # more than the log shows at once (their order does not matter)
        *(agent.op("send", conversation_id=conversation_id, body=f"Step {n}") for n in range(10))
    )
    await agent.op("send", conversation_id=conversation_id, body="Anything else I can do?")
    last = chat.locator(".msg.agent").filter(has_text="Anything else I can do?")
    await last.wait_for(timeout=TIMEOUT_MS)
    await agent.op("close", conversation_id=conversation_id)
    await chat.get_by_role("button", name="Send rating").wait_for(timeout=TIMEOUT_MS)

    log, message = await chat.get_by_role("log").bounding_box(), await last.bounding_box()
    assert log["y"] <= message["y"], (log, message)
    assert message["y"] + message["height"] <= log["y"] + log["height"], (log, message)

    # Rated, then a new chat: its rating card (the same element) starts blank again.
    await chat.get_by_role("button", name="4 stars").click()
    await chat.get_by_label("Comment").fill("Pia was helped")
    await chat.get_by_role("button", name="Send rating").click()
    await chat.get_by_text("Thank you for your feedback!").wait_for(timeout=TIMEOUT_MS)
    await chat.get_by_role("button", name="Start a new chat").click()
    card = chat.locator(".rating")
    assert await card.locator("[aria-pressed=true]").count() == 0
    assert await card.locator("textarea").input_value() == ""
    assert await card.locator("button[type=submit]").is_disabled()
    await agent.close()


async def test_a_chat_kept_over_a_reload_that_cannot_be_opened_is_let_go(system, browser) -> None:
    """The console reopens the chat of its tab after a reload; one it may no longer read (here
    one that does not exist) leaves the empty pane, not an error."""
    await make_tenant(system, "keptchat", "alice")
    console = await console_login(await browser.new_context(), system, "keptchat", "alice")
    await console.evaluate("sessionStorage.setItem('relaydesk:open', 'c-gone')")
    await console.reload()
    await console.get_by_role("status").filter(has_text="connected").wait_for(timeout=TIMEOUT_MS)
    # a function, not an expression: polling an expression needs eval, which the CSP refuses
    await console.wait_for_function(
        "() => sessionStorage.getItem('relaydesk:open') === null", timeout=TIMEOUT_MS
    )
    assert await console.get_by_text(
        "Pick a conversation, or accept an incoming request."
    ).is_visible()
    assert await console.locator(".toast").filter(has_text="Could not load").count() == 0


async def test_a_reloaded_widget_pages_back_to_the_first_message(system, browser) -> None:
    """After a reload the widget showed the latest ``messages_on_enter`` messages and no way
    back to the ones before them; "Earlier messages" draws each page above, in order."""
    await make_tenant(system, "pageback")
    await as_boss(
        system, "pageback", "PATCH", "/api/admin/settings", {"messages_on_enter": 3}, expect=200
    )
    agent = await online_agent(system, "pageback", "Rita")
    demo = await open_demo(await browser.new_context(), system, "pageback")
    chat = widget(demo)
    await start_chat(demo, "Paula")
    conversation_id = await accept_next(agent)
    steps = [f"Step {n}" for n in range(1, 8)]
    for step in steps:  # one after another: their order is the log's
        assert (await agent.op("send", conversation_id=conversation_id, body=step))["t"] == "ack"
    await chat.locator(".msg").filter(has_text="Step 7").wait_for(timeout=TIMEOUT_MS)

    await demo.reload()
    await chat.locator(".msg").filter(has_text="Step 7").wait_for(timeout=TIMEOUT_MS)
    shown = chat.locator(".msg")
    assert await shown.all_inner_texts() == [f"Rita\n{s}" for s in steps[-3:]]
    earlier = chat.get_by_role("button", name="Earlier messages")
    await earlier.click()
    await shown.filter(has_text="Step 2").wait_for(timeout=TIMEOUT_MS)
    assert await shown.all_inner_texts() == [f"Rita\n{s}" for s in steps[1:]]
    await earlier.click()
    await shown.filter(has_text="Step 1").wait_for(timeout=TIMEOUT_MS)
    texts = await shown.all_inner_texts()
    assert texts == [f"Rita\n{s}" for s in steps], texts  # the chat's first message
    # Nothing before it: the button goes with the page that reached it (one more message
    # is asked for than a page draws), no click on an empty page needed.
    await earlier.wait_for(state="hidden", timeout=TIMEOUT_MS)
    assert await shown.all_inner_texts() == texts
    await agent.close()


async def test_a_message_arriving_while_a_reloaded_widget_reads_history_is_drawn_last(
    system, browser
) -> None:
    """After a reload mid-chat, a message that came over the socket before the history answer
    was drawn above the whole restored conversation (each was appended as it arrived); the
    widget places messages by their log position."""
    await make_tenant(system, "reloadrace")
    agent = await online_agent(system, "reloadrace", "Rita")
    demo = await open_demo(await browser.new_context(), system, "reloadrace")
    chat = widget(demo)
    await start_chat(demo, "Ola")
    conversation_id = await accept_next(agent)
    await customer_says(demo, "My order is late")
    await chat.locator(".msg.customer:not(.pending)").wait_for(timeout=TIMEOUT_MS)
    steps = [f"Step {n}" for n in range(1, 4)]
    for step in steps:  # one after another: their order is the log's
        assert (await agent.op("send", conversation_id=conversation_id, body=step))["t"] == "ack"
    await chat.locator(".msg").filter(has_text="Step 3").wait_for(timeout=TIMEOUT_MS)

    # The reloaded widget's history read is held until the agent's next message was drawn.
    asked, release = asyncio.Event(), asyncio.Event()

    async def held_history(route) -> None:  # type: ignore[no-untyped-def]
        asked.set()
        await release.wait()
        await route.continue_()

    await demo.route(lambda url: "/messages" in url, held_history)
    await demo.reload()
    await asyncio.wait_for(asked.wait(), timeout=TIMEOUT_MS / 1000)
    sent = await agent.op("send", conversation_id=conversation_id, body="Sent during the reload")
    assert sent["t"] == "ack", sent
    shown = chat.locator(".msg")
    await shown.filter(has_text="Sent during the reload").wait_for(timeout=TIMEOUT_MS)
    assert await shown.count() == 1  # the history answer is still held
    release.set()
    await shown.filter(has_text="Step 1").wait_for(timeout=TIMEOUT_MS)
    await demo.unroute(lambda url: "/messages" in url, held_history)

    texts = await shown.all_inner_texts()
    expected = ["My order is late", *(f"Rita\n{s}" for s in steps), "Rita\nSent during the reload"]
    assert texts == expected, texts
    lines = await chat.locator(".msg, .system").all_inner_texts()
    assert lines[-1] == "Rita\nSent during the reload", lines
    await agent.close()


async def test_the_chat_stays_open_or_closed_across_a_reload_and_another_page(
    system, browser
) -> None:
    """A customer mid-chat who reloaded the page, or went on to another page of the shop,
    found the chat folded away behind the bubble (found using it under load: the agent's
    answers were there, hidden). The widget keeps the panel as the customer left it."""
    agent, demo = await chatting_with_rita(system, browser, "staysopen")
    chat = widget(demo)
    await customer_says(demo, "Still there?")
    await chat.locator(".msg.customer:not(.pending)").wait_for(timeout=TIMEOUT_MS)

    await demo.reload()
    await chat.get_by_role("log").get_by_text("Still there?").wait_for(timeout=TIMEOUT_MS)
    assert await chat.get_by_role("button", name="Close chat").count() == 1
    await chat.get_by_label("Your message").wait_for(timeout=TIMEOUT_MS)

    # Folded by the customer: it stays folded on the next page, and opens when asked.
    await chat.get_by_role("button", name="Close chat").click()
    await demo.goto(demo.url)
    bubble = chat.get_by_role("button", name="Open chat")
    await bubble.wait_for(timeout=TIMEOUT_MS)
    assert not await chat.get_by_role("log").get_by_text("Still there?").is_visible()
    await bubble.click()
    await chat.get_by_role("log").get_by_text("Still there?").wait_for(timeout=TIMEOUT_MS)
    await agent.close()
