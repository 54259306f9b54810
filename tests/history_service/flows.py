"""A whole conversation driven over real websockets, for tests that need one on the log."""

from typing import Any

import httpx

from tests.admin.helpers import new_agent
from tests.gateway.wsclient import Client


async def served_conversation(
    system: Any, http: httpx.AsyncClient, owner: dict[str, str]
) -> tuple[str, str]:
    """A conversation that is requested, accepted, answered, closed and rated 4."""
    agent_id, agent_auth = await new_agent(http, owner, "rep", "alice")
    token = agent_auth["Authorization"].split()[1]
    agent = await Client.connect(system.gateway.ws_url, token, origin=system.gateway.base_url)
    assert (await agent.op("status", status="online"))["t"] == "ack"
    customer = await Client.connect(
        system.gateway.ws_url,
        system.visitor_token("rep", "visitor-1"),
        origin="https://shop.example",
    )
    conversation_id = (await customer.op("start", visitor={"name": "Vera"}))["conversation_id"]
    await agent.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await agent.op("accept", conversation_id=conversation_id))["t"] == "ack"
    assert (await agent.op("send", conversation_id=conversation_id, body="Hello Vera"))[
        "t"
    ] == "ack"
    assert (await customer.op("send", conversation_id=conversation_id, body="Hi!"))["t"] == "ack"
    assert (await agent.op("close", conversation_id=conversation_id))["t"] == "ack"
    assert (await customer.op("rate", conversation_id=conversation_id, score=4))["t"] == "ack"
    await agent.close()
    await customer.close()
    return agent_id, conversation_id
