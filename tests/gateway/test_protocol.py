"""Delivery guarantees over real websockets: acks, resends, resume, bad frames, limits.

The tests share one system (tests/conftest.py's ``module_system``) and the limit tests
another with tight limits; each test has a tenant of its own.
"""

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
import pytest_asyncio

from relaydesk.settings import Settings
from tests.gateway.wsclient import Client
from tests.servers import MongoServer, RabbitVhosts
from tests.shared_system import shared_system
from tests.system import RunningSystem, running_system

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def engaged_pair(system: RunningSystem, tenant: str) -> tuple[Client, Client, str]:
    agent = await Client.connect(
        system.gateway.ws_url, system.agent_token(tenant, "ann", name="Ann")
    )
    await agent.op("status", status="online")
    customer = await Client.connect(system.gateway.ws_url, system.visitor_token(tenant, "v-pair"))
    conversation_id = (await customer.op("start", visitor={"name": "Vic"}))["conversation_id"]
    await agent.wait_event("conversation.offered", conversation_id=conversation_id)
    assert (await agent.op("accept", conversation_id=conversation_id))["t"] == "ack"
    await customer.wait_event("conversation.accepted", conversation_id=conversation_id)
    return agent, customer, conversation_id


async def test_resend_after_a_lost_ack_yields_one_message(module_system: RunningSystem) -> None:
    agent, customer, conversation_id = await engaged_pair(module_system, "resend")
    first = await customer.op(
        "send", key="same-key", conversation_id=conversation_id, body="only once"
    )
    await (
        customer.close()
    )  # the ack "was lost": the client reconnects and resends with the same key
    again = await Client.connect(
        module_system.gateway.ws_url, module_system.visitor_token("resend", "v-pair")
    )
    second = await again.op(
        "send", key="same-key", conversation_id=conversation_id, body="only once"
    )
    assert first["event_id"] == second["event_id"]
    marker = await again.op("send", conversation_id=conversation_id, body="after")
    await agent.wait_for(lambda f: f["t"] == "event" and f["event"]["id"] == marker["event_id"])
    bodies = [f["event"]["data"]["body"] for f in agent.events("message.sent")]
    assert bodies.count("only once") == 1


async def test_reconnect_from_a_position_gets_exactly_the_missed_events(
    module_system: RunningSystem,
) -> None:
    agent, customer, conversation_id = await engaged_pair(module_system, "resume")
    seen = await customer.op("send", conversation_id=conversation_id, body="before drop")
    got = await customer.wait_for(
        lambda f: f["t"] == "event" and f["event"]["id"] == seen["event_id"]
    )
    last_position = got["position"]
    await customer.close()
    missed = [
        (await agent.op("send", conversation_id=conversation_id, body=f"missed {i}"))["event_id"]
        for i in range(5)
    ]
    await agent.wait_for(lambda f: f["t"] == "event" and f["event"]["id"] == missed[-1])
    back = await Client.connect(
        module_system.gateway.ws_url,
        module_system.visitor_token("resume", "v-pair"),
        resume_from=last_position,
    )
    live = await agent.op("send", conversation_id=conversation_id, body="live")
    await back.wait_for(lambda f: f["t"] == "event" and f["event"]["id"] == live["event_id"])
    replayed = [f for f in back.events() if f["event"]["type"] == "message.sent"]
    assert [f["event"]["id"] for f in replayed] == [*missed, live["event_id"]]
    positions = [f["position"] for f in back.events()]
    assert positions == sorted(positions) and len(positions) == len(set(positions))
    assert all(p > last_position for p in positions)


@pytest.fixture
async def short_buffer_system(settings: Settings):  # type: ignore[no-untyped-def]
    """A system of its own: the resume buffer is the gateway's, over all tenants."""
    short = settings.model_copy(update={"resume_buffer_events": 3})
    async with running_system(short, with_history=False) as running:
        yield running


async def test_resume_from_before_the_gateway_buffer_asks_for_resync(
    short_buffer_system: RunningSystem,
) -> None:
    # A real position the buffer no longer holds (-5 stood for one before; it is refused
    # now: not a position of the log, tests/security/test_loose_input.py).
    system = short_buffer_system
    agent = await Client.connect(system.gateway.ws_url, system.agent_token("acme", "ann"))
    for status in ("online", "away", "online", "away", "online"):
        assert (await agent.op("status", status=status))["t"] == "ack"
    await agent.wait_for(lambda f: len(agent.events("agent.status_changed")) == 5)
    customer = await Client.connect(
        system.gateway.ws_url, system.visitor_token("acme", "v9"), resume_from=0
    )
    await customer.wait_for(lambda f: f["t"] == "resync" and f["reason"] == "too_far_behind")


async def test_bad_frames_get_clear_errors_and_the_socket_keeps_serving(
    module_system: RunningSystem,
) -> None:
    _agent, customer, conversation_id = await engaged_pair(module_system, "badframes")
    await customer.connection.send("{not json")
    await customer.wait_for(lambda f: f["t"] == "error" and f["code"] == "bad_frame")
    await customer.connection.send(orjson.dumps([1, 2]).decode())
    unknown = await customer.op("explode")
    assert unknown["code"] == "unknown_op"
    not_mine = await customer.op("accept", conversation_id=conversation_id)
    assert not_mine["code"] == "forbidden"
    empty = await customer.op("send", conversation_id=conversation_id, body="")
    assert empty["code"] == "invalid_payload"
    too_long = await customer.op("send", conversation_id=conversation_id, body="x" * 9000)
    assert too_long["code"] == "invalid_payload"
    still = await customer.op("send", conversation_id=conversation_id, body="still here")
    assert still["t"] == "ack"


async def test_oversized_frame_closes_only_that_socket(module_system: RunningSystem) -> None:
    agent, customer, conversation_id = await engaged_pair(module_system, "oversized")
    big = orjson.dumps(
        {"op": "send", "id": "big", "conversation_id": conversation_id, "body": "x" * 100_000}
    ).decode()
    await customer.connection.send(big)
    assert await customer.wait_closed() == 1009
    assert (await agent.op("send", conversation_id=conversation_id, body="agent unaffected"))[
        "t"
    ] == "ack"


async def test_script_tags_travel_as_plain_text(module_system: RunningSystem) -> None:
    agent, customer, conversation_id = await engaged_pair(module_system, "scripttags")
    payload = "<script>alert(1)</script>"
    await customer.op("send", conversation_id=conversation_id, body=payload)
    got = await agent.wait_event("message.sent", body=payload)
    assert got["event"]["data"]["body"] == payload


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tight_system(
    vhosts: RabbitVhosts, mongo_server: MongoServer
) -> AsyncIterator[RunningSystem]:
    """Shared by the limit tests: the limits are per socket, each test has its own."""
    async with shared_system(
        vhosts,
        mongo_server,
        with_history=False,
        ws_queue_limit=600,
        ws_rate_per_s=2.0,
        ws_rate_burst=3,
    ) as running:
        yield running


async def test_rate_limit_answers_rate_limited_and_keeps_serving(
    tight_system: RunningSystem,
) -> None:
    agent = await Client.connect(
        tight_system.gateway.ws_url, tight_system.agent_token("ratelimit", "ann")
    )
    results = await asyncio.gather(*(agent.op("status", status="online") for _ in range(8)))
    codes = sorted(r.get("code") or r["t"] for r in results)
    assert "ack" in codes and "rate_limited" in codes, codes
    # A refusal says when a resend can be taken, so an ordered client waits once, not blindly.
    assert all(r["retry_after_ms"] > 0 for r in results if r.get("code") == "rate_limited")


async def test_typing_signals_do_not_use_up_the_message_budget(
    tight_system: RunningSystem,
) -> None:
    """The customer's ops may burst 3 frames; ``start`` took one. Typing next to each message
    used to draw on the same budget, and the message after three signals was refused."""
    _, customer, conversation_id = await engaged_pair(tight_system, "typing")
    signals = await asyncio.gather(
        *(customer.op("typing", conversation_id=conversation_id, typing=True) for _ in range(3))
    )
    assert [s["t"] for s in signals] == ["ack"] * 3, signals
    sent = await customer.op("send", conversation_id=conversation_id, body="after typing")
    assert sent["t"] == "ack", sent
