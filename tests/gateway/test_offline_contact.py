"""The ``contact`` op: a customer in a missed conversation leaves an email for the answer."""

import httpx

from tests.admin.helpers import eventually
from tests.gateway.wsclient import Client
from tests.system import RunningSystem


async def test_customer_leaves_an_email_on_a_missed_conversation(system: RunningSystem) -> None:
    visitor = system.visitor_token("acme", "v-night")
    customer = await Client.connect(system.gateway.ws_url, visitor)
    conversation_id = (await customer.op("start", visitor={"name": "Nat"}))["conversation_id"]
    await customer.wait_event(
        "conversation.missed", conversation_id=conversation_id
    )  # nobody is online

    refused = await customer.op("contact", conversation_id=conversation_id, email="not an email")
    assert refused["t"] == "error" and refused["code"] == "invalid_payload"
    agent = await Client.connect(system.gateway.ws_url, system.agent_token("acme", "ann"))
    assert (await agent.op("contact", conversation_id=conversation_id, email="ann@acme.test"))[
        "code"
    ] == "forbidden"
    assert (
        await customer.op(
            "contact", key="c1", conversation_id=conversation_id, email="nat@example.com"
        )
    )["t"] == "ack"
    assert (
        await customer.op(
            "contact", key="c1", conversation_id=conversation_id, email="nat@example.com"
        )
    )["t"] == "ack"  # a resend is the same event
    assert (await customer.op("send", conversation_id=conversation_id, body="please email me"))[
        "t"
    ] == "ack"

    supervisor = system.agent_token("acme", "sue", role="admin")
    async with httpx.AsyncClient(
        base_url=system.gateway.base_url, headers={"Authorization": f"Bearer {supervisor}"}
    ) as http:

        async def with_contact() -> dict | None:
            found = (await http.get("/api/conversations", params={"view": "missed"})).json()
            return next(
                (
                    c
                    for c in found
                    if c["conversation_id"] == conversation_id
                    and c["message_count"] == 1
                    and c["visitor"]["email"]
                ),
                None,
            )

        conversation = await eventually(
            with_contact, what="the missed conversation with its contact"
        )
    assert conversation["status"] == "missed" and conversation["visitor"] == {
        "id": "v-night",
        "name": "Nat",
        "email": "nat@example.com",
        "page_url": None,
        "avatar_attachment_id": None,  # a platform user's picture; none from the widget
    }
    await agent.close()
    await customer.close()
