"""The admin pages in a real browser: what an owner manages, what a plain agent may not see."""

import httpx
import pytest

from tests.browser.pages import TIMEOUT_MS, console_login, make_tenant

pytestmark = pytest.mark.browser


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
    sections = (
        await page.get_by_role("navigation", name="Admin sections")
        .get_by_role("button")
        .all_inner_texts()
    )
    assert sections == ["Canned responses"]
    await page.goto(f"{system.gateway.base_url}/admin#agents")
    await page.get_by_role("heading", name="Canned responses").wait_for(timeout=TIMEOUT_MS)
