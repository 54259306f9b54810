"""The admin pages in a real browser: what an owner manages, what a plain agent may not see.

The module shares one system and one Chromium (tests/browser/conftest.py); each test has
its own tenant.
"""

import asyncio
import re
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from contracts.settings import TenantSettings
from relaydesk.passwords import MIN_LENGTH
from tests.admin.helpers import eventually
from tests.browser.axe import audit_context, describe, serious_violations
from tests.browser.pages import (
    TIMEOUT_MS,
    add_canned,
    as_boss,
    console_login,
    make_tenant,
    served_conversation,
)
from tests.gateway.wsclient import Client
from tests.system import RunningSystem

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

SHARES_ONE_SYSTEM = True  # tests/browser/conftest.py


async def admin_login(context, system, tenant: str, name: str):  # type: ignore[no-untyped-def]
    page = await context.new_page()
    await page.goto(f"{system.gateway.base_url}/admin?tenant={tenant}")
    await page.get_by_label("Email").fill(f"{name}@{tenant}.test")
    await page.get_by_label("Password").fill(f"{name}-secret-pw")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("navigation", name="Admin sections").wait_for(timeout=TIMEOUT_MS)
    return page


async def test_owner_adds_an_agent_a_canned_response_and_changes_settings(
    system, browser, artifacts
) -> None:
    await make_tenant(system, "adm")
    page = await admin_login(await browser.new_context(), system, "adm", "boss")

    await page.get_by_label("Name").fill("Carol")
    await page.get_by_label("Email").fill("carol@adm.test")
    await page.get_by_label("Password").fill("carol-secret-pw")
    await page.get_by_role("button", name="Add agent").click()
    await page.get_by_role("cell", name="carol@adm.test").wait_for(timeout=TIMEOUT_MS)
    await page.screenshot(path=str(artifacts / "admin-agents.png"))

    # Edited in place (the page offered only Remove): her name and chat limit
    await page.get_by_role("button", name="Edit Carol").click()
    editor = page.locator("form").filter(has=page.get_by_role("button", name="Save agent"))
    await editor.get_by_label("Name").fill("Carol Danvers")
    await editor.get_by_label("Max chats").fill("8")
    await editor.get_by_role("button", name="Save agent").click()
    await page.get_by_role("cell", name="Carol Danvers", exact=True).wait_for(timeout=TIMEOUT_MS)
    listed = await as_boss(system, "adm", "GET", "/api/admin/agents", None)
    [carol] = [a for a in listed if a["email"] == "carol@adm.test"]
    assert (carol["name"], carol["max_chats"], carol["role"]) == ("Carol Danvers", 8, "agent")

    await page.get_by_role("button", name="Canned responses").click()
    await page.get_by_label("Shortcut").fill("hours")
    await page.get_by_label("Text").fill("We are open 9 to 5, Monday to Friday.")
    await page.get_by_role("button", name="Add response").click()
    await page.get_by_role("cell", name="/hours").wait_for(timeout=TIMEOUT_MS)

    await page.get_by_role("button", name="Settings").click()
    await page.get_by_label("Messages loaded on entering").fill("25")
    await page.get_by_label("Routing mode").select_option("least_busy")
    await page.get_by_role("button", name="Save settings").click()
    await page.get_by_role("status").filter(has_text="Settings saved").wait_for(timeout=TIMEOUT_MS)

    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        token = (
            await http.post(
                "/api/auth/login",
                json={"tenant": "adm", "email": "carol@adm.test", "password": "carol-secret-pw"},
            )
        ).json()["access_token"]
        canned = (
            await http.get(
                "/api/canned", params={"q": "hours"}, headers={"Authorization": f"Bearer {token}"}
            )
        ).json()
    assert [c["text"] for c in canned] == ["We are open 9 to 5, Monday to Friday."]
    await page.reload()
    await page.get_by_label("Messages loaded on entering").wait_for(timeout=TIMEOUT_MS)
    assert await page.get_by_label("Messages loaded on entering").input_value() == "25"
    assert await page.get_by_label("Routing mode").input_value() == "least_busy"

    # The new agent signs in to the console with the password the owner set.
    console = await console_login(await browser.new_context(), system, "adm", "carol")
    assert await console.get_by_role("link", name="Admin").is_hidden()


async def test_a_plain_agent_sees_only_what_their_permissions_allow(system, browser) -> None:
    await make_tenant(system, "perm", "dave")
    page = await admin_login(await browser.new_context(), system, "perm", "dave")
    # the same exact list, waited for: the sections render after sign-in, and a snapshot taken
    # before that read none (a CI failure: [] == ['Canned responses'])
    sections = page.get_by_role("navigation", name="Admin sections").get_by_role("button")
    await expect(sections).to_have_text(["Canned responses"], timeout=TIMEOUT_MS)
    await page.goto(f"{system.gateway.base_url}/admin#agents")
    await page.get_by_role("heading", name="Canned responses").wait_for(timeout=TIMEOUT_MS)


async def test_billing_is_offered_to_saas_accounts_only(system, browser) -> None:
    # A tool-mode owner was offered "Billing", which could only answer "Not available on
    # this installation" after two 404s in the browser's console.
    await make_tenant(system, "toolco")
    await make_tenant(system, "saasco", mode="saas")
    context = await browser.new_context()
    failures: list[str] = []
    context.on("response", lambda r: failures.append(r.url) if "/api/billing" in r.url else None)

    tool = await admin_login(context, system, "toolco", "boss")
    nav = tool.get_by_role("navigation", name="Admin sections")
    await expect(nav.get_by_role("button", name="Audit")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(nav.get_by_role("button", name="Billing")).to_have_count(0)
    await tool.goto(f"{system.gateway.base_url}/admin?tenant=toolco#billing")
    await expect(tool.get_by_role("heading", name="Agents")).to_be_visible(timeout=TIMEOUT_MS)
    assert failures == []  # the page never asked for a bill

    saas = await admin_login(await browser.new_context(), system, "saasco", "boss")
    nav = saas.get_by_role("navigation", name="Admin sections")
    await nav.get_by_role("button", name="Billing").click()
    await expect(saas.get_by_role("heading", name="Plan: Free")).to_be_visible(timeout=TIMEOUT_MS)

    for tenant, mode in (("toolco", "tool"), ("saasco", "saas")):
        account = await as_boss(system, tenant, "GET", "/api/account", None)
        assert (account["tenant_id"], account["mode"]) == (tenant, mode)


async def test_business_hours_in_the_wrong_form_get_a_clear_error(system, browser) -> None:
    """Used to toast JSON.parse's "Unexpected token 'm', "mon 9-17" is not valid JSON"."""
    await make_tenant(system, "hours")
    page = await admin_login(await browser.new_context(), system, "hours", "boss")
    await page.get_by_role("button", name="Settings").click()
    hours = page.get_by_label("Business hours")
    await hours.fill("mon 9-17")
    await page.get_by_role("button", name="Save settings").click()
    # Next to the field, as its description (besides the hint it already had)
    await expect(hours).to_have_attribute("aria-invalid", "true", timeout=TIMEOUT_MS)
    await expect(hours).to_be_focused()
    text = await field_error(hours)
    assert "not in the expected form" in text and '{"mon": [["09:00", "17:00"]]' in text, text
    assert "JSON" not in text and "token" not in text, text
    await expect(hours).to_have_accessible_description(re.compile("^Days mon … sun.*expected form"))
    settings = await as_boss(system, "hours", "GET", "/api/admin/settings", None)
    assert settings["business_hours"] is None  # nothing was sent


async def test_the_forms_take_what_the_server_takes(system, browser) -> None:
    """The new agent's password field let 8 characters through (the rule is 12), and
    "Messages loaded on entering" refused 0 and 501-1000, which the setting allows."""
    await make_tenant(system, "bounds")
    page = await admin_login(await browser.new_context(), system, "bounds", "boss")
    await page.get_by_role("button", name="Agents").click()
    password = page.get_by_label("Password", exact=True)
    assert await password.get_attribute("minlength") == str(MIN_LENGTH)
    await page.get_by_role("button", name="Settings").click()
    for label, name in (
        ("Messages loaded on entering", "messages_on_enter"),
        ("Offer timeout", "offer_timeout_s"),
        ("Default max chats", "max_chats_default"),
    ):
        box = page.get_by_label(label)
        await box.wait_for(timeout=TIMEOUT_MS)
        bounds = {
            key: value
            for meta in TenantSettings.model_fields[name].metadata
            for key in ("ge", "le")
            if (value := getattr(meta, key, None)) is not None
        }
        shown = (await box.get_attribute("min"), await box.get_attribute("max"))
        assert shown == (str(bounds["ge"]), str(bounds["le"])), (label, shown, bounds)


async def test_an_agent_is_offered_delete_only_where_they_may_delete(system, browser) -> None:
    """A plain agent saw Delete on shared responses too, and got 403 for pressing it."""
    await make_tenant(system, "shared", "dave")
    await add_canned(system, "shared", "hours", "We are open 9 to 5.")
    page = await admin_login(await browser.new_context(), system, "shared", "dave")
    await page.get_by_label("Shortcut").fill("mine")
    await page.get_by_label("Text").fill("My own words.")
    await page.get_by_role("button", name="Add response").click()
    mine = page.get_by_role("row").filter(has_text="/mine")
    await mine.wait_for(timeout=TIMEOUT_MS)
    assert await mine.get_by_role("button", name="Delete").is_visible()
    shared = page.get_by_role("row").filter(has_text="/hours")
    assert await shared.get_by_role("button").count() == 0


async def test_reports_per_agent_name_the_agents(system, browser) -> None:
    """Rows per agent were labelled with agent ids ("alice-8a97cd")."""
    await make_tenant(system, "named", "alice")
    await served_conversation(system, "named", "alice")
    report = await eventually(
        lambda: rows_per_agent(system, "named"), what="the served conversation in the report"
    )
    [alice_id] = [row["key"] for row in report]
    page = await admin_login(await browser.new_context(), system, "named", "boss")
    await page.get_by_role("button", name="Reports").click()
    await page.get_by_label("Group by").select_option("agent")
    await page.get_by_role("cell", name="Alice", exact=True).wait_for(timeout=TIMEOUT_MS)
    assert await page.get_by_role("cell", name=alice_id).count() == 0


async def rows_per_agent(system: RunningSystem, tenant: str) -> list[dict[str, Any]]:
    path = "/api/reports/summary?group_by=agent"
    rows: list[dict[str, Any]] = (await as_boss(system, tenant, "GET", path, None))["rows"]
    return rows


async def test_a_section_still_loading_does_not_replace_the_one_picked_after_it(
    system, browser
) -> None:
    """The first section (Agents) rendered when its data came back, over the section picked
    meanwhile: under load the Audit section's form vanished (its test timed out on it)."""
    await make_tenant(system, "slowfirst")
    context = await browser.new_context()
    agents_listed, release = asyncio.Event(), asyncio.Event()

    async def slow_agents(route) -> None:  # type: ignore[no-untyped-def]
        agents_listed.set()
        await release.wait()
        await route.continue_()

    await context.route("**/api/admin/agents", slow_agents)
    page = await admin_login(context, system, "slowfirst", "boss")
    await agents_listed.wait()
    await page.get_by_role("button", name="Audit").click()
    show = page.get_by_role("button", name="Show admin changes")
    await show.wait_for(timeout=TIMEOUT_MS)
    async with page.expect_response("**/api/admin/agents"):
        release.set()
    # One more round trip from the page, queued behind the Agents answer's handling: once
    # it is back, the section that answer rendered has had its turn.
    await page.evaluate("async () => { await (await fetch('/admin')).text(); }")
    assert await show.is_visible()
    assert await page.get_by_role("heading", level=1).inner_text() == "Audit"


async def test_the_admin_changes_table_fits_its_card(system, browser) -> None:
    """A long setting (a greeting, the allowed sites) widened the table past its card."""
    await make_tenant(system, "wide")
    sites = [f"https://shop-{n}.very-long-subdomain-name.example.com" for n in range(6)]
    await as_boss(
        system,
        "wide",
        "PATCH",
        "/api/admin/settings",
        {"greeting": "Hi" * 100, "allowed_origins": sites},
    )
    page = await admin_login(await browser.new_context(), system, "wide", "boss")
    await page.get_by_role("button", name="Audit").click()
    await page.get_by_role("button", name="Show admin changes").click()
    card = page.locator(".card").filter(
        has=page.get_by_role("heading", name="Administrative changes")
    )
    await card.get_by_role("cell", name="tenant.settings_changed").wait_for(timeout=TIMEOUT_MS)
    widths = await card.evaluate(
        "card => ({ card: card.clientWidth, table: card.querySelector('table').offsetWidth })"
    )
    assert widths["table"] <= widths["card"], widths


# Connectors left out: the shared system runs no connectors service, so the section waits
# for its request to time out (5 s) and shows an error paragraph, the same as others' errors.
ADMIN_SECTIONS = ("Agents", "Permission groups", "Canned responses", "Settings", "Reports")


async def test_the_admin_pages_have_no_serious_accessibility_violations(system, browser) -> None:
    """axe-core on every section an owner sees, the audit with a timeline and its outputs
    (an aria-label on <pre> failed before)."""
    await make_tenant(system, "axeadmin", "alice")
    conversation_id = await served_conversation(system, "axeadmin", "alice")
    page = await admin_login(await audit_context(browser), system, "axeadmin", "boss")
    found = {}
    for section in ADMIN_SECTIONS:
        await page.get_by_role("button", name=section, exact=True).click()
        await page.get_by_role("heading", name=section, exact=True).wait_for(timeout=TIMEOUT_MS)
        await page.get_by_text("Loading…").wait_for(state="detached", timeout=TIMEOUT_MS)
        found[section] = await serious_violations(page)
    await page.get_by_role("button", name="Audit", exact=True).click()
    await page.get_by_label("Conversation id").fill(conversation_id)
    await page.get_by_role("button", name="Show timeline").click()
    await page.get_by_role("button", name="State here").first.click()
    await page.get_by_text('"position"').first.wait_for(timeout=TIMEOUT_MS)
    await page.get_by_role("button", name="Show admin changes").click()
    await page.get_by_role("cell", name="agent.created").first.wait_for(timeout=TIMEOUT_MS)
    found["Audit"] = await serious_violations(page)
    assert not any(found.values()), "\n".join(
        f"{section}:\n{describe(violations)}" for section, violations in found.items() if violations
    )


async def field_error(control: Any) -> str:
    """The error shown for a form field: the element its aria-describedby names last, which
    must sit inside the field's own label (next to the field, not at the top of the form)."""
    described_by = (await control.get_attribute("aria-describedby") or "").split()
    assert described_by, "the field names no description"
    message = control.page.locator(f"[id='{described_by[-1]}']")
    label = control.locator("xpath=ancestor::label")
    assert await label.locator(f"[id='{described_by[-1]}']").count() == 1, "not next to the field"
    text: str = await message.inner_text()
    return text


async def test_a_setting_the_server_refuses_is_shown_next_to_its_field(system, browser) -> None:
    """The server's refusal ("timezone: unknown time zone ...") was shown in the alert at the
    foot of the form, far from the field it is about, and nothing marked the field."""
    await make_tenant(system, "badzone")
    page = await admin_login(await browser.new_context(), system, "badzone", "boss")
    await page.get_by_role("button", name="Settings").click()
    zone = page.get_by_label("Time zone")
    await zone.fill("Mars/Olympus")
    await page.get_by_role("button", name="Save settings").click()
    await expect(zone).to_have_attribute("aria-invalid", "true", timeout=TIMEOUT_MS)
    await expect(zone).to_be_focused()
    assert "unknown time zone" in await field_error(zone)
    await expect(zone).to_have_accessible_name("Time zone")  # the message is not its name
    await expect(zone).to_have_accessible_description(re.compile("unknown time zone"))
    await expect(page.get_by_role("alert").filter(has_text="time zone")).to_have_count(0)
    # Editing the field clears its error; the corrected value saves.
    await zone.fill("Europe/Paris")
    await expect(zone).not_to_have_attribute("aria-invalid", "true")
    await expect(zone).to_have_accessible_description("")
    await page.get_by_role("button", name="Save settings").click()
    await page.get_by_role("status").filter(has_text="Settings saved").wait_for(timeout=TIMEOUT_MS)
    settings = await as_boss(system, "badzone", "GET", "/api/admin/settings", None)
    assert settings["timezone"] == "Europe/Paris"


async def test_a_refusal_about_no_one_field_stays_in_the_form_alert(system, browser) -> None:
    await make_tenant(system, "dupgroup")
    await as_boss(system, "dupgroup", "POST", "/api/admin/groups", {"name": "Support"}, expect=201)
    page = await admin_login(await browser.new_context(), system, "dupgroup", "boss")
    await page.get_by_role("button", name="Permission groups").click()
    await page.get_by_label("Group name").fill("support")
    await page.get_by_role("button", name="Create group").click()
    form = page.locator("form").filter(has=page.get_by_role("button", name="Create group"))
    await expect(form.get_by_role("alert")).to_contain_text("exists", timeout=TIMEOUT_MS)
    await expect(form.locator("[aria-invalid]")).to_have_count(0)


async def group_named(system: RunningSystem, tenant: str, name: str) -> list[dict[str, Any]]:
    groups = await as_boss(system, tenant, "GET", "/api/admin/groups", None)
    return [g for g in groups if g["name"] == name]


async def test_deleting_a_group_asks_first_naming_the_group_and_its_members(
    system, browser
) -> None:
    """Delete removed the group at once, on one click, its members' permissions with it."""
    await make_tenant(system, "delgroup", "dave")
    made = await as_boss(
        system,
        "delgroup",
        "POST",
        "/api/admin/groups",
        {"name": "Night shift", "permissions": ["see_history"]},
        expect=201,
    )
    agents = await as_boss(system, "delgroup", "GET", "/api/admin/agents", None)
    [dave] = [a for a in agents if a["email"] == "dave@delgroup.test"]
    await as_boss(
        system,
        "delgroup",
        "PATCH",
        f"/api/admin/agents/{dave['agent_id']}",
        {"groups": [made["group_id"]]},
    )
    page = await admin_login(await browser.new_context(), system, "delgroup", "boss")
    await page.get_by_role("button", name="Permission groups").click()
    row = page.get_by_role("row").filter(has_text="Night shift")
    await row.get_by_role("button", name="Delete").click()

    dialog = page.get_by_role("dialog", name="Delete group “Night shift”?")
    await expect(dialog).to_be_visible(timeout=TIMEOUT_MS)
    await expect(dialog).to_contain_text("1 member")
    await expect(dialog).to_contain_text("lose")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(row.get_by_role("button", name="Delete")).to_be_focused()
    assert await group_named(system, "delgroup", "Night shift")
    await expect(row).to_be_visible()

    await row.get_by_role("button", name="Delete").click()
    await dialog.get_by_role("button", name="Delete group").click()
    await expect(row).to_have_count(0, timeout=TIMEOUT_MS)
    assert not await group_named(system, "delgroup", "Night shift")


async def test_every_destructive_admin_action_asks_first(system, browser) -> None:
    """Removing an agent asked with the browser's own confirm(); deleting a canned response
    or a webhook did not ask at all. Each now asks in the page's dialog, Cancel keeping it."""
    await make_tenant(system, "asks", "dave")
    await add_canned(system, "asks", "hours", "We are open 9 to 5.")
    await as_boss(
        system,
        "asks",
        "POST",
        "/api/admin/webhooks",
        {"url": "https://hooks.example.com/relaydesk", "event_types": ["message.sent"]},
        expect=201,
    )
    context = await browser.new_context()
    page = await admin_login(context, system, "asks", "boss")
    native: list[str] = []

    async def dismiss(asked) -> None:  # type: ignore[no-untyped-def]
        native.append(asked.message)  # the browser's own confirm(): counted, and answered No
        await asked.dismiss()

    page.on("dialog", dismiss)
    for section, row_text, button, question in (
        ("Agents", "dave@asks.test", "Remove", "Remove Dave?"),
        ("Canned responses", "/hours", "Delete", "Delete canned response /hours?"),
        ("Webhooks", "hooks.example.com", "Remove", "Remove webhook"),
    ):
        await page.get_by_role("button", name=section, exact=True).click()
        row = page.get_by_role("row").filter(has_text=row_text)
        await row.get_by_role("button", name=button).click()
        dialog = page.get_by_role("dialog", name=question)
        await expect(dialog).to_be_visible(timeout=TIMEOUT_MS)
        await dialog.get_by_role("button", name="Cancel").click()
        await expect(dialog).to_be_hidden()
        await expect(row).to_be_visible()
    assert native == []
    assert any(a["email"] == "dave@asks.test" for a in await agents_of(system, "asks"))
    assert await as_boss(system, "asks", "GET", "/api/admin/webhooks", None)
    canned = await as_boss(system, "asks", "GET", "/api/canned", None)
    assert [c["shortcut"] for c in canned] == ["hours"]


async def agents_of(system: RunningSystem, tenant: str) -> list[dict[str, Any]]:
    agents: list[dict[str, Any]] = await as_boss(system, tenant, "GET", "/api/admin/agents", None)
    return agents


async def test_the_console_leads_an_auditor_to_the_conversations_timeline(system, browser) -> None:
    # The audit page asked for a conversation id that no page showed anywhere.
    await make_tenant(system, "trail", "dave")
    # Both online before any request: broadcast offers each chat to both of them.
    console = await console_login(await browser.new_context(), system, "trail", "boss")
    agent = await console_login(await browser.new_context(), system, "trail", "dave")
    customer = await Client.connect(system.gateway.ws_url, system.visitor_token("trail", "v-1"))
    second = await Client.connect(system.gateway.ws_url, system.visitor_token("trail", "v-2"))
    try:
        started = await customer.op("start", visitor={"name": "Nora"})
        conversation_id = started["conversation_id"]
        assert (await customer.op("send", conversation_id=conversation_id, body="Hi"))["t"] == "ack"
        offer = console.locator(".request").filter(has_text="Nora")
        await offer.get_by_role("button", name="Accept").click(timeout=TIMEOUT_MS)
        panel = console.locator("#visitor")
        await expect(panel.locator("code")).to_have_text(conversation_id, timeout=TIMEOUT_MS)
        await panel.get_by_role("link", name="Audit trail").click()

        timeline = console.get_by_role("list", name="Event timeline")
        await expect(timeline).to_contain_text("conversation.requested", timeout=TIMEOUT_MS)
        await expect(timeline).to_contain_text("conversation.accepted")
        await expect(console.get_by_text("Hash chain intact.")).to_be_visible()
        await expect(console.get_by_label("Conversation id")).to_have_value(conversation_id)

        # Without view_audit the id is shown (to quote it to someone who has it), no link.
        other = (await second.op("start", visitor={"name": "Omar"}))["conversation_id"]
        offer = agent.locator(".request").filter(has_text="Omar")
        await offer.get_by_role("button", name="Accept").click(timeout=TIMEOUT_MS)
        panel = agent.locator("#visitor")
        await expect(panel.locator("code")).to_have_text(other, timeout=TIMEOUT_MS)
        await expect(panel.get_by_role("link", name="Audit trail")).to_have_count(0)
    finally:
        await customer.close()
        await second.close()
