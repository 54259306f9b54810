"""Transfer from the console: the request card reaches the colleague it is offered to (and
is still there after they reload), the sender hears whether it was declined or accepted,
the note is for the receiving agent only (never the customer's chat), and a transfer
nobody can take says so."""

import pytest

from tests.browser.pages import (
    TIMEOUT_MS,
    as_boss,
    console_login,
    customer_says,
    make_tenant,
    open_demo,
    start_chat,
    widget,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

SHARES_ONE_SYSTEM = True  # tests/browser/conftest.py


async def transfer(console, colleague: str, note: str) -> None:  # type: ignore[no-untyped-def]
    await console.get_by_role("button", name="Transfer", exact=True).click()
    dialog = console.get_by_role("dialog", name="Transfer conversation")
    option = dialog.locator("option").filter(has_text=colleague)
    await option.wait_for(state="attached", timeout=TIMEOUT_MS)
    # Opened blank: the last transfer's note was about another customer (it used to stay)
    assert await dialog.get_by_label("Note for the receiver").input_value() == ""
    assert await dialog.get_by_label("Or to group").input_value() == ""
    await dialog.get_by_label("To agent").select_option(await option.get_attribute("value"))
    await dialog.get_by_label("Note for the receiver").fill(note)
    await dialog.get_by_role("button", name="Transfer").click()


async def test_transfer_to_a_colleague_and_to_nobody_available(system, browser) -> None:
    await make_tenant(system, "outfit", "alice", "bob", "carol")
    alice, bob, carol = [
        await console_login(await browser.new_context(), system, "outfit", name)
        for name in ("alice", "bob", "carol")
    ]
    demo = await open_demo(await browser.new_context(), system, "outfit")
    await start_chat(demo, "Dana")
    await customer_says(demo, "My order never arrived")

    # Broadcast routing offers the chat to all three; Alice takes it, the others' cards go.
    for console in (alice, bob, carol):
        await console.locator(".request").filter(has_text="Dana").wait_for(timeout=TIMEOUT_MS)
    await alice.locator(".request").get_by_role("button", name="Accept").click()
    for console in (bob, carol):
        await console.locator(".request").wait_for(state="detached", timeout=TIMEOUT_MS)
    log = alice.get_by_role("log", name="Messages")
    await log.get_by_text("My order never arrived").wait_for(timeout=TIMEOUT_MS)

    # Carol steps away: a transfer to her cannot be taken, and the console says so at once.
    await carol.get_by_label("Your status").select_option("away")
    await transfer(alice, "Carol", "she knows the courier")
    await (
        alice.get_by_role("status").filter(has_text="Transfer failed").wait_for(timeout=TIMEOUT_MS)
    )

    # Bob reloads with the transfer pending: the card comes back from routing, sender and note.
    await transfer(alice, "Bob", "VIP, leaking tent")
    card = bob.locator(".request")
    await card.filter(has_text="Transfer from Alice: VIP, leaking tent").wait_for(
        timeout=TIMEOUT_MS
    )
    await bob.reload()
    await bob.get_by_role("status").filter(has_text="connected").wait_for(timeout=TIMEOUT_MS)
    await card.filter(has_text="Transfer from Alice: VIP, leaking tent").wait_for(
        timeout=TIMEOUT_MS
    )
    assert "Dana" in await card.inner_text()
    assert await carol.locator(".request").count() == 0
    # Bob declines: Alice is told, and the chat stays hers.
    await card.get_by_role("button", name="Decline").click()
    await (
        alice.get_by_role("status")
        .filter(has_text="Bob declined your transfer")
        .wait_for(timeout=TIMEOUT_MS)
    )
    assert await alice.get_by_label("Reply").is_visible()

    await transfer(alice, "Bob", "refund approved, please confirm")
    await (
        alice.get_by_role("status")
        .filter(has_text="Transfer requested")
        .last.wait_for(timeout=TIMEOUT_MS)
    )
    await card.filter(has_text="refund approved").wait_for(timeout=TIMEOUT_MS)
    await card.get_by_role("button", name="Accept").click()
    await (
        alice.get_by_role("status")
        .filter(has_text="Bob accepted your transfer")
        .wait_for(timeout=TIMEOUT_MS)
    )
    bobs_log = bob.get_by_role("log", name="Messages")
    await bobs_log.get_by_text("My order never arrived").wait_for(timeout=TIMEOUT_MS)
    await bob.get_by_text("Note from Alice: refund approved, please confirm").wait_for(
        timeout=TIMEOUT_MS
    )
    await bob.get_by_label("Reply").wait_for(timeout=TIMEOUT_MS)
    # The customer sees the handover, never the note meant for Bob.
    chat = widget(demo)
    await chat.get_by_text("transferred the chat to Bob").wait_for(timeout=TIMEOUT_MS)
    # and its header names him (it said "An agent is here to help" after a transfer)
    await (
        chat.get_by_role("status")
        .filter(has_text="Bob is here to help")
        .wait_for(timeout=TIMEOUT_MS)
    )
    shown = await chat.locator(".log").inner_text()
    assert "refund approved" not in shown and "VIP" not in shown

    # Bob hands it to a group by its name, as agents know groups (the field took only the
    # group's id, which no page shows): Dave, in "Escalation", gets the card.
    group = await as_boss(
        system, "outfit", "POST", "/api/admin/groups", {"name": "Escalation"}, expect=201
    )
    dave = {"email": "dave@outfit.test", "name": "Dave", "password": "dave-secret-pw"}
    await as_boss(
        system,
        "outfit",
        "POST",
        "/api/admin/agents",
        {**dave, "groups": [group["group_id"]]},
        expect=201,
    )
    dave_console = await console_login(await browser.new_context(), system, "outfit", "dave")
    await bob.get_by_role("button", name="Transfer", exact=True).click()
    dialog = bob.get_by_role("dialog", name="Transfer conversation")
    # the field offers the tenant's groups by name (Bob cannot list groups as an admin)
    await dialog.locator("datalist option[value='Escalation']").wait_for(
        state="attached", timeout=TIMEOUT_MS
    )
    await dialog.get_by_label("Or to group").fill("escalation")
    await dialog.get_by_role("button", name="Transfer").click()
    await (
        dave_console.locator(".request")
        .filter(has_text="Transfer from Bob")
        .wait_for(timeout=TIMEOUT_MS)
    )
