"""The gateway end to end with the real agent service: request, accept, chat, close.

One system is shared by the module (tests/conftest.py's ``module_system``); each test has
a tenant of its own.
"""

import asyncio

import httpx
import pytest

from tests.admin.helpers import admin_command
from tests.gateway.wsclient import Client
from tests.system import RunningSystem, history_held

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_customer_and_agent_chat_through_the_gateway(module_system: RunningSystem) -> None:
    # Visitor sessions are only for tenants that exist (issue 14, item 11).
    assert (
        await admin_command(
            module_system.settings, "create-tenant", "--tenant", "chat", "--name", "Chat"
        )
        == 0
    )
    agent = await Client.connect(
        module_system.gateway.ws_url, module_system.agent_token("chat", "ann", name="Ann")
    )
    assert (await agent.op("status", status="online"))["t"] == "ack"
    customer = await Client.connect(
        module_system.gateway.ws_url, module_system.visitor_token("chat", "v1")
    )
    started = await customer.op("start", visitor={"name": "Vic"})
    assert started["t"] == "ack", started
    conversation_id = started["conversation_id"]
    await agent.wait_event("conversation.offered", conversation_id=conversation_id)
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        ann = {"Authorization": f"Bearer {module_system.agent_token('chat', 'ann', name='Ann')}"}
        # The console's state from routing: the offer, named, with the position it stands at.
        workspace = (await http.get("/api/workspace", headers=ann)).json()
        [offer] = workspace["offers"]
        assert (offer["conversation_id"], offer["visitor_name"]) == (conversation_id, "Vic")
        assert isinstance(workspace["position"], int) and workspace["chats"] == []
        bob = {"Authorization": f"Bearer {module_system.agent_token('chat', 'bob')}"}
        assert (await http.get("/api/workspace", headers=bob)).json()["offers"] == []
        customer_token = {"Authorization": f"Bearer {module_system.visitor_token('chat', 'v1')}"}
        assert (await http.get("/api/workspace", headers=customer_token)).status_code in (
            401,
            403,
        )
    accepted = await agent.op("accept", conversation_id=conversation_id)
    assert accepted["t"] == "ack", accepted
    await customer.wait_event("conversation.accepted", conversation_id=conversation_id)
    sent = await customer.op("send", conversation_id=conversation_id, body="hello, I need help")
    assert sent["t"] == "ack"
    got = await agent.wait_event("message.sent", conversation_id=conversation_id)
    assert got["event"]["data"]["body"] == "hello, I need help"
    assert got["event"]["id"] == sent["event_id"]
    reply = await agent.op("send", conversation_id=conversation_id, body="happy to help")
    assert reply["t"] == "ack"
    mine = await customer.wait_event("message.sent", author_kind="agent")
    assert mine["event"]["data"]["body"] == "happy to help"
    async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
        headers = {"Authorization": f"Bearer {module_system.visitor_token('chat', 'v1')}"}
        async with asyncio.timeout(10):  # history archives asynchronously: poll until it has both
            while (
                len(
                    bodies := [
                        m["event"]["data"].get("body")
                        for m in (
                            await http.get(
                                f"/api/conversations/{conversation_id}/messages", headers=headers
                            )
                        ).json()
                        if m["event"]["type"] == "message.sent"
                    ]
                )
                < 2
            ):
                await asyncio.sleep(0.05)
        assert bodies == ["hello, I need help", "happy to help"]
        session = (
            await http.post(
                "/api/visitor/session",
                json={"tenant": "chat", "visitor_token": module_system.visitor_token("chat", "v1")},
            )
        ).json()
        assert session["visitor_id"] == "v1" and session["conversation_id"] == conversation_id
    closed = await customer.op("close", conversation_id=conversation_id)
    assert closed["t"] == "ack", closed
    await agent.wait_event("conversation.closed", conversation_id=conversation_id)
    after = await customer.op("send", conversation_id=conversation_id, body="too late")
    assert after["t"] == "error" and after["code"] == "conversation_closed"
    await agent.close()
    await customer.close()


async def test_two_agents_accepting_at_once_exactly_one_wins(module_system: RunningSystem) -> None:
    import asyncio

    ann = await Client.connect(
        module_system.gateway.ws_url, module_system.agent_token("race", "ann")
    )
    bob = await Client.connect(
        module_system.gateway.ws_url, module_system.agent_token("race", "bob")
    )
    for agent in (ann, bob):
        assert (await agent.op("status", status="online"))["t"] == "ack"
    customer = await Client.connect(
        module_system.gateway.ws_url, module_system.visitor_token("race", "v2")
    )
    for round_no in range(5):
        started = await customer.op("start", visitor={"name": f"round {round_no}"})
        conversation_id = started["conversation_id"]
        await ann.wait_event("conversation.offered", conversation_id=conversation_id)
        await bob.wait_event("conversation.offered", conversation_id=conversation_id)
        results = await asyncio.gather(
            ann.op("accept", conversation_id=conversation_id),
            bob.op("accept", conversation_id=conversation_id),
        )
        outcomes = sorted(r["t"] for r in results)
        assert outcomes == ["ack", "error"], results
        loser = next(r for r in results if r["t"] == "error")
        assert loser["code"] == "already_assigned"
        winner = ann if results[0]["t"] == "ack" else bob
        assert (await winner.op("close", conversation_id=conversation_id))["t"] == "ack"


async def test_a_returning_visitor_resumes_their_chat_while_history_lags(
    module_system: RunningSystem,
) -> None:
    """The visitor session named the visitor's open conversation from history's read model:
    behind the log (under load it lags), it said "none", and a reloaded widget lost its live
    chat or started a second one. Routing, which decided the request, knows it at once."""
    assert (
        await admin_command(
            module_system.settings, "create-tenant", "--tenant", "lag", "--name", "Lag"
        )
        == 0
    )
    # history stops following the log; the shared system's history catches up once released
    with history_held(module_system):
        customer = await Client.connect(
            module_system.gateway.ws_url, module_system.visitor_token("lag", "v9")
        )
        started = await customer.op("start", visitor={"name": "Vic"})
        assert started["t"] == "ack", started
        async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
            session = await http.post(
                "/api/visitor/session",
                json={"tenant": "lag", "visitor_token": module_system.visitor_token("lag", "v9")},
            )
            assert session.status_code == 200, session.text
            assert session.json()["conversation_id"] == started["conversation_id"]
            someone_else = await http.post("/api/visitor/session", json={"tenant": "lag"})
            assert someone_else.json()["conversation_id"] is None
        closed = await customer.op("close", conversation_id=started["conversation_id"])
        assert closed["t"] == "ack", closed
        await customer.wait_event("conversation.closed")
        async with httpx.AsyncClient(base_url=module_system.gateway.base_url) as http:
            after = await http.post(
                "/api/visitor/session",
                json={"tenant": "lag", "visitor_token": module_system.visitor_token("lag", "v9")},
            )
        assert after.json()["conversation_id"] is None  # closed: the widget starts afresh
        await customer.close()
