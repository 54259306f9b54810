"""The conversation every fault scenario runs: engage a customer and an agent, chat, count.

``settle`` checks the three places a user would look: the agent's socket, the customer's
own copy and the history archive; each must hold every acked message exactly once.
"""

import asyncio
from collections import Counter
from typing import Any

import httpx

from tests.admin.helpers import eventually, new_agent, owner_session
from tests.fault.driver import ResilientClient, tally


def gateway_client(base_url: str, timeout: float = 20) -> httpx.AsyncClient:
    """An HTTP client for a gateway under faults. Its idle connections are dropped after 2 s,
    before the gateway's own keep-alive timeout (5 s) closes them: a request sent on a
    connection the server is closing at that moment fails with "Server disconnected without
    sending a response" (seen in the cluster test, after a kill left the client idle)."""
    return httpx.AsyncClient(
        base_url=base_url, timeout=timeout, limits=httpx.Limits(keepalive_expiry=2.0)
    )


async def engaged(
    system: Any,
    http: httpx.AsyncClient,
    urls: list[str],
    console_origin: str | None = None,
    **agent_fields: Any,
) -> tuple[ResilientClient, ResilientClient, str, dict[str, str]]:
    owner = await owner_session(system, http, "fault")
    _, agent_auth = await new_agent(http, owner, "fault", "alice", **agent_fields)
    agent = await ResilientClient(
        urls, agent_auth["Authorization"].split()[1], console_origin or system.gateway.base_url
    ).start()
    assert (await agent.op("status", status="online"))["t"] == "ack"
    customer = await ResilientClient(
        urls, system.visitor_token("fault", "visitor-1"), "https://shop.example"
    ).start()
    conversation_id = (await customer.op("start", visitor={"name": "Faye"}))["conversation_id"]
    await agent.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await agent.op("accept", conversation_id=conversation_id))["t"] == "ack"
    return customer, agent, conversation_id, owner


async def chat(
    customer: ResilientClient, conversation_id: str, bodies: list[str], sent: list[str]
) -> None:
    for body in bodies:
        reply = await customer.op(
            "send", key=f"send-{body}", conversation_id=conversation_id, body=body
        )
        assert reply["t"] == "ack", reply
        sent.append(body)


async def chat_until(
    stop: asyncio.Event, customer: ResilientClient, conversation_id: str, sent: list[str]
) -> None:
    """Keep the conversation going (one acked message after another) until ``stop`` is set."""
    count = 0
    while not stop.is_set():
        await chat(customer, conversation_id, [f"m-{count}"], sent)
        count += 1


async def acked_more(sent: list[str], more: int) -> None:
    target = len(sent) + more
    await eventually(lambda: len(sent) >= target, timeout=60, what=f"{more} more messages acked")


async def settle(
    system: Any,
    http: httpx.AsyncClient,
    owner: dict[str, str],
    customer: ResilientClient,
    agent: ResilientClient,
    conversation_id: str,
    sent: list[str],
    scenario: str,
) -> None:
    """Wait for everything acked to arrive, then count: nothing lost, nothing twice, anywhere."""
    await eventually(
        lambda: all(agent.bodies("customer")[b] for b in sent),
        timeout=90,
        what="the agent to receive every message",
    )
    # The customer's own copies come on their own socket, which may have been resuming when
    # the last ones were fanned out (they come with its resume, after the agent's): waited
    # for too, so a late copy is not counted lost. One that never comes is, in the tally.
    try:
        await eventually(
            lambda: all(customer.bodies("customer")[b] for b in sent),
            timeout=30,
            what="the customer to receive its own copy of every message",
        )
    except AssertionError:
        pass  # the tally below says which are missing
    report = tally(scenario, sent, agent.bodies("customer"), agent.recovered + customer.recovered)
    assert report.lost == 0 and report.duplicated == 0, report
    echo = tally(
        f"{scenario} (customer's own copy)", sent, customer.bodies("customer"), customer.recovered
    )
    assert echo.lost == 0 and echo.duplicated == 0, echo

    last: list[str] = ["no answer yet"]  # what the transcript said last, for a failure's message

    async def archived() -> list[str] | None:
        response = await http.get(f"/api/conversations/{conversation_id}/transcript", headers=owner)
        if response.status_code != 200:
            last[0] = f"HTTP {response.status_code}: {response.text[:300]}"
            return None
        bodies = [
            e["data"]["body"] for e in response.json()["events"] if e["type"] == "message.sent"
        ]
        last[0] = f"{len(set(sent) - set(bodies))} of {len(sent)} sent not in the transcript"
        return bodies if set(sent) <= set(bodies) else None

    try:
        stored = await eventually(archived, timeout=90, what="history to archive every message")
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last: {last[0]})") from None
    history = tally(f"{scenario} (history)", sent, Counter(stored), 0)
    assert history.lost == 0 and history.duplicated == 0, history
