"""A conversation's life at command level: request, offer, accept, close, rate; missed; queue."""

import pytest

from agent_service.service import AgentService
from tests.agent_service.helpers import Desk, LogWatch, customer, set_tenant_settings

pytestmark = pytest.mark.shared_service


async def test_request_accept_close_rate(desk: Desk, watch: LogWatch) -> None:
    await desk.publish_admin(
        "agent.created",
        {"agent_id": "a1", "email": "ann@acme.test", "name": "Ann"},
        stream="agent:a1",
    )
    assert (await desk.online("a1")).ok
    reply = await desk.request("c1")
    assert reply.ok and reply.data["status"] == "offered"
    assert (await desk.state("c1"))["offered_to"] == ["a1"]

    accepted = await desk.accept("c1", "a1")
    assert accepted.ok and accepted.data == {
        "status": "engaged",
        "agent_id": "a1",
        "queue_position": None,
    }
    [joined] = await watch.wait_for("message.system", "c1", kind="joined")
    assert joined.data["text"] == "Ann has entered the chat"
    assert joined.id in accepted.event_ids

    early_rate = await desk.do(
        "conversation.rate", {"conversation_id": "c1", "score": 5}, customer("v-c1")
    )
    assert not early_rate.ok and early_rate.code == "not_closed"
    closed = await desk.do(
        "conversation.close", {"conversation_id": "c1", "closed_by": "customer"}, customer("v-c1")
    )
    assert closed.ok
    await watch.wait_for("message.system", "c1", kind="closed")
    rated = await desk.do(
        "conversation.rate",
        {"conversation_id": "c1", "score": 4, "comment": "quick"},
        customer("v-c1"),
    )
    assert rated.ok
    again = await desk.do(
        "conversation.rate", {"conversation_id": "c1", "score": 1}, customer("v-c1")
    )
    assert again.code == "already_rated"
    late_accept = await desk.accept("c1", "a1")
    assert late_accept.code == "conversation_closed"

    types = [
        e.type
        for e in (await watch.wait_for("conversation.rated", "c1")) and watch.events
        if e.data.get("conversation_id") == "c1"
    ]
    assert types[:3] == ["conversation.requested", "message.system", "conversation.offered"]
    assert (
        types.index("conversation.accepted")
        < types.index("conversation.closed")
        < types.index("conversation.rated")
    )
    status = await desk.query("agents.status")
    assert status == [
        {
            "agent_id": "a1",
            "name": "Ann",
            "status": "online",
            "connected": True,
            "active_chats": 0,
            "pending_offers": 0,
            "max_chats": 5,
            "available": True,
        }
    ]


async def test_no_agent_online_is_missed_with_offline_text_and_picked_up_later(
    desk: Desk, watch: LogWatch, service: AgentService
) -> None:
    await set_tenant_settings(desk, service, offline_text="We are closed, leave a note")
    reply = await desk.request("c1")
    assert reply.ok and reply.data["status"] == "missed"
    await watch.wait_for("conversation.missed", "c1", reason="no_agent_online")
    [note] = await watch.wait_for("message.system", "c1", kind="missed")
    assert note.data["text"] == "We are closed, leave a note"
    assert [c["conversation_id"] for c in await desk.query("queue")] == ["c1"]

    await desk.online("a1")  # coming online offers what waited
    assert (await desk.state("c1"))["offered_to"] == ["a1"]
    assert (await desk.accept("c1", "a1")).ok


async def test_queue_positions_are_published_and_move_up(desk: Desk, watch: LogWatch) -> None:
    await desk.online("a1", max_chats=1)
    assert (await desk.request("c1")).data["status"] == "offered"
    assert (await desk.request("c2")).data == {
        "status": "queued",
        "agent_id": None,
        "queue_position": 1,
    }
    assert (await desk.request("c3")).data["queue_position"] == 2
    queue = await desk.query("queue")
    assert [(c["conversation_id"], c["queue_position"]) for c in queue] == [("c2", 1), ("c3", 2)]

    assert (await desk.accept("c1", "a1")).ok
    assert (await desk.close("c1", "a1")).ok  # a1 has room again: c2 is offered, c3 moves up
    assert (await desk.state("c2"))["offered_to"] == ["a1"]
    await watch.wait_for("conversation.queued", "c3", position=1)
    assert (await desk.state("c3"))["queue_position"] == 1


async def test_accept_refusals_are_specific(desk: Desk) -> None:
    await desk.online("a1", max_chats=1)
    await desk.online("a2", max_chats=1)
    await desk.request("c1")
    assert (await desk.accept("c1", "a1")).ok
    assert (await desk.accept("c1", "a2")).code == "already_assigned"
    assert (await desk.accept("nope", "a2")).code == "not_found"
    await desk.request("c2")  # only a2 has room, so only a2 is offered
    assert (await desk.state("c2"))["offered_to"] == ["a2"]
    assert (await desk.accept("c2", "a1")).code == "not_offered"
    impostor = await desk.do(
        "conversation.accept", {"conversation_id": "c2", "agent_id": "a2"}, customer("v-c2")
    )
    assert impostor.code == "forbidden"
    assert (await desk.state("c2"))["status"] == "offered"


async def test_bad_commands_get_clear_errors_and_the_service_keeps_serving(desk: Desk) -> None:
    bad = await desk.do("conversation.accept", {"conversation_id": "c1"}, customer("v1"))
    assert (bad.ok, bad.code) == (False, "invalid_payload")
    unknown = await desk.do("conversation.explode", {"conversation_id": "c1"}, customer("v1"))
    assert (unknown.ok, unknown.code) == (False, "unknown_type")
    assert (await desk.online("a1")).ok
    assert (await desk.request("c1")).data["status"] == "offered"


async def test_tenants_never_share_agents_or_conversations(desk: Desk) -> None:
    other = Desk(desk.bus, tenant="globex")
    await desk.online("a1")
    assert (await other.request("c1")).data["status"] == "missed"  # acme's agent is not globex's
    assert (await desk.request("c1")).data["status"] == "offered"  # same id, another tenant
    assert (await other.accept("c1", "a1")).code == "not_offered"
    assert await other.query("agents.status") == []


async def test_outside_business_hours_the_miss_says_so(
    desk: Desk, watch: LogWatch, service: AgentService
) -> None:
    await set_tenant_settings(
        desk, service, business_hours={"sun": []}, timezone="UTC"
    )  # never open
    assert (await desk.request("c1")).data["status"] == "missed"
    await watch.wait_for("conversation.missed", "c1", reason="outside_business_hours")
