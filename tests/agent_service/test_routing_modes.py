"""Who gets offered what: broadcast, round robin, least busy, declines, timeouts, departments."""

import pytest

from agent_service.service import AgentService
from tests.agent_service.helpers import Desk, LogWatch, agent, set_tenant_settings, wait_until

pytestmark = pytest.mark.shared_service


async def test_broadcast_decline_keeps_it_offered_to_the_others_then_queued(
    desk: Desk, watch: LogWatch
) -> None:
    await desk.online("a1")
    await desk.online("a2")
    await desk.request("c1")
    assert (await desk.state("c1"))["offered_to"] == ["a1", "a2"]
    assert (await desk.decline("c1", "a1")).ok
    state = await desk.state("c1")
    assert (state["status"], state["offered_to"]) == ("offered", ["a2"])
    assert (await desk.accept("c1", "a1")).code == "not_offered"
    assert (await desk.decline("c1", "a2")).ok
    state = await desk.state("c1")
    assert (state["status"], state["queue_position"]) == ("queued", 1)
    await watch.wait_for("conversation.queued", "c1", reason="declined", position=1)
    await desk.online("a3")  # a newcomer gets it; those who declined are not asked again
    assert (await desk.state("c1"))["offered_to"] == ["a3"]


async def test_round_robin_takes_turns_and_decline_passes_it_on(
    desk: Desk, service: AgentService
) -> None:
    await set_tenant_settings(desk, service, routing_mode="round_robin")
    for agent_id in ("a1", "a2", "a3"):
        await desk.online(agent_id, max_chats=10)
    offered = []
    for n in range(6):
        await desk.request(f"c{n}")
        offered.append((await desk.state(f"c{n}"))["offered_to"])
    assert offered == [["a1"], ["a2"], ["a3"], ["a1"], ["a2"], ["a3"]]
    assert (await desk.decline("c0", "a1")).ok
    assert (await desk.state("c0"))["offered_to"] == ["a2"]


async def test_least_busy_offers_to_the_agent_with_fewest_chats(
    desk: Desk, service: AgentService
) -> None:
    await set_tenant_settings(desk, service, routing_mode="least_busy")
    await desk.online("a1", max_chats=10)
    for n in range(3):  # a1 alone takes three chats
        await desk.request(f"early{n}")
        assert (await desk.accept(f"early{n}", "a1")).ok
    await desk.online("a2", max_chats=10)
    await desk.online("a3", max_chats=10)
    await desk.request("x1")
    assert (await desk.state("x1"))["offered_to"] == ["a2"]
    assert (await desk.accept("x1", "a2")).ok
    await desk.request("x2")
    assert (await desk.state("x2"))["offered_to"] == ["a3"]  # a3 has 0, a2 has 1, a1 has 3
    await desk.request("x3")  # a3 now holds an offer: a2 and a3 are equally loaded, ties by id
    assert (await desk.state("x3"))["offered_to"] == ["a2"]
    status = {
        a["agent_id"]: (a["active_chats"], a["pending_offers"])
        for a in await desk.query("agents.status")
    }
    assert status == {"a1": (3, 0), "a2": (1, 1), "a3": (0, 1)}


async def test_offer_timeout_reoffers_to_the_next_agent(
    desk: Desk, watch: LogWatch, service: AgentService
) -> None:
    await set_tenant_settings(desk, service, routing_mode="round_robin")
    await desk.online("a1")
    await desk.online("a2")
    await desk.request("c1")
    assert (await desk.state("c1"))["offered_to"] == ["a1"]
    [expired] = await watch.wait_for("conversation.offer_withdrawn", "c1", reason="expired")
    assert expired.data["agent_ids"] == ["a1"]
    await watch.wait_for("conversation.offered", "c1", count=2)
    assert (await desk.state("c1"))["offered_to"] == ["a2"]
    assert (await desk.accept("c1", "a1")).code == "not_offered"
    assert (await desk.accept("c1", "a2")).ok


async def test_department_limits_offers_to_its_groups(desk: Desk, service: AgentService) -> None:
    await desk.publish_admin(
        "permission_group.created",
        {"group_id": "g-sales", "name": "Sales", "departments": ["sales"]},
    )
    await desk.publish_admin(
        "agent.created",
        {"agent_id": "a1", "email": "a1@acme.test", "name": "A1", "groups": ["g-sales"]},
        stream="agent:a1",
    )
    await desk.publish_admin(
        "agent.created",
        {"agent_id": "a2", "email": "a2@acme.test", "name": "A2"},
        stream="agent:a2",
    )
    await desk.online("a1")
    await desk.online("a2")
    await desk.request("c-sales", department="sales")
    await desk.request("c-any")
    assert (await desk.state("c-sales"))["offered_to"] == ["a1"]
    assert (await desk.state("c-any"))["offered_to"] == ["a1", "a2"]
    assert (await desk.accept("c-sales", "a2")).code == "not_offered"


async def test_going_offline_withdraws_offers_and_reroutes(desk: Desk, watch: LogWatch) -> None:
    await desk.online("a1")
    await desk.request("c1")
    await desk.do("agent.set_status", {"agent_id": "a1", "status": "away"}, agent("a1"))
    await watch.wait_for("conversation.offer_withdrawn", "c1", reason="agent_offline")
    assert (await desk.state("c1"))["status"] == "missed"  # nobody else is online
    await desk.online("a2")
    assert (await desk.state("c1"))["offered_to"] == ["a2"]


@pytest.mark.own_service  # names tenant "acme" in its body
async def test_removed_agent_is_never_offered_and_cannot_accept(
    desk: Desk, service: AgentService
) -> None:
    await desk.online("a1")
    await desk.online("a2")
    await desk.request("c1")
    await desk.publish_admin("agent.removed", {"agent_id": "a1"}, stream="agent:a1")
    await wait_until(
        lambda: service.state.tenant("acme").agents["a1"].removed, what="removal folded"
    )
    assert (await desk.accept("c1", "a1")).code == "forbidden"
    await desk.request("c2")
    assert (await desk.state("c2"))["offered_to"] == ["a2"]
    assert [a["agent_id"] for a in await desk.query("agents.status")] == ["a2"]
