"""Page steps shared by the browser tests: a customer on the demo page, an agent in the console.

Locators follow what a person sees (roles, labels, text) so the tests also check that the
pages are labelled for assistive technology.
"""

from typing import Any

import httpx

from tests.admin.helpers import admin_command, create_tenant
from tests.gateway.wsclient import Client
from tests.system import RunningSystem

TIMEOUT_MS = 15_000


async def make_tenant(
    system: RunningSystem, tenant: str, *agents: str, mode: str = "tool"
) -> dict[str, str]:
    """A tenant (tool mode unless said) with one owner and the named agents; returns name ->
    password."""
    await create_tenant(system, tenant, mode)
    passwords = {}
    for name in ("boss", *agents):
        role = "owner" if name == "boss" else "agent"
        done = await admin_command(
            system.settings,
            "create-agent",
            "--tenant",
            tenant,
            "--email",
            f"{name}@{tenant}.test",
            "--name",
            name.title(),
            "--role",
            role,
            "--password",
            f"{name}-secret-pw",
        )
        assert done == 0, "relaydesk admin create-agent failed (its output is captured above)"
        passwords[name] = f"{name}-secret-pw"
    return passwords


async def as_boss(
    system: RunningSystem, tenant: str, method: str, path: str, body: Any, expect: int = 200
) -> Any:
    """One API call as the tenant's owner (made by ``make_tenant``); returns the answer's JSON."""
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        login = await http.post(
            "/api/auth/login",
            json={"tenant": tenant, "email": f"boss@{tenant}.test", "password": "boss-secret-pw"},
        )
        token = login.json()["access_token"]
        answer = await http.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, json=body
        )
        assert answer.status_code == expect, answer.text
        return answer.json()


async def add_canned(system: RunningSystem, tenant: str, shortcut: str, text: str) -> None:
    await as_boss(
        system,
        tenant,
        "POST",
        "/api/canned",
        {"shortcut": shortcut, "text": text, "scope": "tenant"},
        expect=201,
    )


async def console_login(context: Any, system: RunningSystem, tenant: str, name: str) -> Any:
    page = await context.new_page()
    await page.goto(f"{system.gateway.base_url}/console?tenant={tenant}")
    await page.get_by_label("Email").fill(f"{name}@{tenant}.test")
    await page.get_by_label("Password").fill(f"{name}-secret-pw")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("status").filter(has_text="connected").wait_for(timeout=TIMEOUT_MS)
    return page


def widget(page: Any) -> Any:
    """The widget's shadow root (Playwright's CSS locators pierce open shadow roots)."""
    return page.locator("#relaydesk-widget")


async def open_demo(context: Any, system: RunningSystem, tenant: str, on_socket: Any = None) -> Any:
    """The demo shop with the widget open; ``on_socket`` sees its websockets from the start."""
    page = await context.new_page()
    if on_socket is not None:
        page.on("websocket", on_socket)
    await page.goto(f"{system.gateway.base_url}/demo?tenant={tenant}")
    await widget(page).get_by_role("button", name="Open chat").click()
    return page


async def start_chat(
    page: Any, name: str, topic: str | None = None, email: str = "customer@example.com"
) -> None:
    root = widget(page)
    await root.get_by_label("Name").fill(name)
    await root.get_by_label("Email").fill(email)
    if topic:
        await root.get_by_label("Topic").select_option(topic)
    await root.get_by_role("button", name="Start chat").click()
    await root.get_by_label("Your message").wait_for(timeout=TIMEOUT_MS)


async def customer_says(page: Any, text: str) -> None:
    box = widget(page).get_by_label("Your message")
    await box.fill(text)
    await box.press("Enter")


async def agent_says(page: Any, text: str) -> None:
    box = page.get_by_label("Reply")
    await box.fill(text)
    await box.press("Enter")


async def online_agent(system: RunningSystem, tenant: str, name: str = "Ann") -> Client:
    """An agent online over the protocol (no console page: cheaper where the test watches the
    widget only)."""
    agent = await Client.connect(
        system.gateway.ws_url, system.agent_token(tenant, name.lower(), name=name)
    )
    assert (await agent.op("status", status="online"))["t"] == "ack"
    return agent


async def accept_next(agent: Client) -> str:
    """The agent accepts the conversation offered to them; returns its id."""
    offered = await agent.wait_event("conversation.offered", timeout=TIMEOUT_MS / 1000)
    conversation_id: str = offered["event"]["data"]["conversation_id"]
    assert (await agent.op("accept", conversation_id=conversation_id))["t"] == "ack"
    return conversation_id


async def visitor_messages(
    page: Any, system: RunningSystem, tenant: str, upto: int | None = None
) -> list[dict[str, Any]]:
    """The stored messages of the widget's conversation (``{position, event}``), as the
    history query answers them; with ``upto``, once history holds the log up to there."""
    token = await page.evaluate(f"() => localStorage.getItem('relaydesk:{tenant}:token')")
    params: dict[str, int] = {"limit": 500} if upto is None else {"limit": 500, "upto": upto}
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        session = await http.post(
            "/api/visitor/session", json={"tenant": tenant, "visitor_token": token}
        )
        conversation_id = session.json()["conversation_id"]
        answer = await http.get(
            f"/api/conversations/{conversation_id}/messages",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()
    return items


async def visitor_history(page: Any, system: RunningSystem, tenant: str) -> list[dict[str, Any]]:
    """The stored messages' events of the widget's conversation."""
    return [item["event"] for item in await visitor_messages(page, system, tenant)]


async def served_conversation(system: RunningSystem, tenant: str, agent: str) -> str:
    """A conversation of ``tenant`` that the named agent (made by ``make_tenant``) accepted,
    answered and closed, driven over the protocol; returns its id."""
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        login = await http.post(
            "/api/auth/login",
            json={
                "tenant": tenant,
                "email": f"{agent}@{tenant}.test",
                "password": f"{agent}-secret-pw",
            },
        )
    ws_url = system.gateway.ws_url
    agent_socket = await Client.connect(ws_url, login.json()["access_token"])
    customer = await Client.connect(ws_url, system.visitor_token(tenant, f"v-{agent}"))
    try:
        assert (await agent_socket.op("status", status="online"))["t"] == "ack"
        conversation_id: str = (await customer.op("start", visitor={"name": "Cleo"}))[
            "conversation_id"
        ]
        await agent_socket.wait_event("conversation.offered", conversation_id=conversation_id)
        for op, fields in (
            ("accept", {}),
            ("send", {"body": "Hello, how can I help?"}),
            ("close", {}),
        ):
            done = await agent_socket.op(op, conversation_id=conversation_id, **fields)
            assert done["t"] == "ack", done
    finally:
        await agent_socket.close()
        await customer.close()
    return conversation_id
