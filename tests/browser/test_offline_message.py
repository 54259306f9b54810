"""Nobody online: the widget asks for an email (unless the pre-chat form had one) and a
message, which lands in the missed conversation with the contact."""

import httpx
import pytest

from tests.admin.helpers import bearer, eventually
from tests.browser.pages import TIMEOUT_MS, make_tenant, open_demo, widget

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

SHARES_ONE_SYSTEM = True  # tests/browser/conftest.py


async def test_offline_form_leaves_email_and_message_in_the_missed_conversation(
    system, browser, artifacts
) -> None:
    await make_tenant(system, "night", "alice")  # alice never signs in: nobody is online
    demo = await open_demo(await browser.new_context(), system, "night")
    chat = widget(demo)
    await chat.get_by_label("Name").fill("Dana")  # no email in the pre-chat form
    await chat.get_by_role("button", name="Start chat").click()
    await chat.get_by_text("No agent is available right now").wait_for(timeout=TIMEOUT_MS)

    email = chat.get_by_label("Where can we reach you?")
    await email.wait_for(timeout=TIMEOUT_MS)
    assert not await chat.get_by_label(
        "Your message"
    ).is_visible()  # the composer gives way to the form
    payload = "<b>Call me</b> after 6 please"
    await chat.get_by_label("Message for us").fill(payload)
    await chat.get_by_role("button", name="Leave message").click()
    assert await email.evaluate(
        "input => input.validity.valueMissing"
    )  # required: nothing sent without it
    # "x@y" passes the browser's own e-mail check but not the server's: refused here, by the
    # same rule, before anything is sent (the server's refusal read as a regex pattern)
    await email.fill("dana@example")
    await chat.get_by_role("button", name="Leave message").click()
    assert await email.evaluate("input => input.validity.patternMismatch")
    assert await chat.locator(".notice").filter(has_text="not sent").count() == 0
    await email.fill("dana@example.com")
    await chat.get_by_role("button", name="Leave message").click()
    await chat.get_by_text("Thanks! We will get back to you at dana@example.com.").wait_for(
        timeout=TIMEOUT_MS
    )
    sent = chat.locator(".log .msg.customer").filter(has_text="Call me")
    await sent.wait_for(timeout=TIMEOUT_MS)
    assert await sent.inner_text() == payload and await chat.locator(".log b").count() == 0
    await demo.screenshot(path=str(artifacts / "widget-offline-message.png"))

    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await bearer(http, "night", "boss@night.test", "boss-secret-pw")

        async def missed_with_contact() -> dict | None:
            found = (
                await http.get("/api/conversations", params={"view": "missed"}, headers=owner)
            ).json()
            return next(
                (
                    c
                    for c in found
                    if (c.get("visitor") or {}).get("email") == "dana@example.com"
                    and c["message_count"] == 1
                ),
                None,
            )

        conversation = await eventually(
            missed_with_contact, what="the missed conversation with the email and the message"
        )
        assert conversation["status"] == "missed" and conversation["visitor"]["name"] == "Dana"
        messages = (
            await http.get(
                f"/api/conversations/{conversation['conversation_id']}/messages", headers=owner
            )
        ).json()
        assert [
            m["event"]["data"]["body"] for m in messages if m["event"]["type"] == "message.sent"
        ] == [payload]

    # With an email from the pre-chat form, the offline form asks only for the message.
    again = await open_demo(await browser.new_context(), system, "night")
    await widget(again).get_by_label("Name").fill("Eli")
    await widget(again).get_by_label("Email").fill("eli@example.com")
    await widget(again).get_by_role("button", name="Start chat").click()
    await widget(again).get_by_label("Message for us").wait_for(timeout=TIMEOUT_MS)
    assert not await widget(again).get_by_label("Where can we reach you?").is_visible()
