"""Transfers, agent disconnects with a grace period, and closing with offers outstanding."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from agent_service.service import AgentService
from contracts import Actor
from tests.agent_service.helpers import Desk, LogWatch, agent, customer, wait_until

pytestmark = pytest.mark.shared_service


async def engaged(desk: Desk, conversation_id: str, agent_id: str) -> None:
    await desk.request(conversation_id)
    assert (await desk.accept(conversation_id, agent_id)).ok


async def transfer(desk: Desk, conversation_id: str, from_agent: str, **target: str):
    return await desk.do(
        "conversation.transfer",
        {"conversation_id": conversation_id, "from_agent_id": from_agent, **target},
        agent(from_agent),
    )


async def test_transfer_to_agent_accepted_moves_the_chat(desk: Desk, watch: LogWatch) -> None:
    await desk.online("a1")
    await engaged(desk, "c1", "a1")
    await desk.online("a2")
    reply = await transfer(desk, "c1", "a1", to_agent_id="a2", note="billing question")
    assert reply.ok
    state = await desk.state("c1")
    assert (state["status"], state["agent_id"], state["offered_to"], state["transfer_from"]) == (
        "transfer_pending",
        "a1",
        ["a2"],
        "a1",
    )
    [offer] = await watch.wait_for("conversation.offered", "c1", transfer_from="a1")
    assert offer.data["agent_ids"] == ["a2"]
    assert (await desk.accept("c1", "a2")).ok
    [moved] = await watch.wait_for("conversation.transferred", "c1")
    assert (moved.data["from_agent_id"], moved.data["to_agent_id"]) == ("a1", "a2")
    assert (await desk.state("c1"))["agent_id"] == "a2"
    chats = {a["agent_id"]: a["active_chats"] for a in await desk.query("agents.status")}
    assert chats == {"a1": 0, "a2": 1}


@pytest.mark.own_service  # names tenant "acme" in its body
async def test_transfer_declined_stays_with_the_original_agent(
    desk: Desk, service: AgentService
) -> None:
    await desk.online("a1")
    await engaged(desk, "c1", "a1")
    await desk.online("a2")
    await desk.online("a3")
    await desk.publish_admin(
        "agent.updated",
        {"agent_id": "a2", "before": {}, "after": {"groups": ["g-billing"]}},
        stream="agent:a2",
    )
    await desk.publish_admin(
        "agent.updated",
        {"agent_id": "a3", "before": {}, "after": {"groups": ["g-billing"]}},
        stream="agent:a3",
    )
    await wait_until(
        lambda: service.state.tenant("acme").agents["a3"].groups == ("g-billing",),
        what="groups folded",
    )
    assert (await transfer(desk, "c1", "a1", to_group="g-billing")).ok
    assert (await desk.state("c1"))["offered_to"] == ["a2", "a3"]
    assert (await transfer(desk, "c1", "a1", to_agent_id="a2")).code == "transfer_pending"
    assert (await desk.decline("c1", "a2")).ok
    assert (await desk.decline("c1", "a3")).ok
    state = await desk.state("c1")
    assert (state["status"], state["agent_id"], state["offered_to"]) == ("engaged", "a1", [])
    assert (await transfer(desk, "c1", "a2", to_agent_id="a3")).code == "not_assigned"
    assert (await transfer(desk, "c1", "a1", to_agent_id="nobody")).code == "unavailable"


async def test_disconnected_agent_gets_chats_requeued_after_grace(
    desk: Desk, watch: LogWatch
) -> None:
    await desk.online("a1")
    await engaged(desk, "c1", "a1")
    await desk.online("a2", max_chats=1)
    await desk.request("c2")
    assert (await desk.accept("c2", "a2")).ok  # a2 is full for now
    lost = await desk.do("agent.connection_lost", {"agent_id": "a1"}, agent("a1"))
    assert lost.ok
    [told] = await watch.wait_for("conversation.agent_disconnected", "c1")
    assert told.data == {"conversation_id": "c1", "agent_id": "a1", "grace_s": 1}
    [requeued] = await watch.wait_for("conversation.queued", "c1", reason="agent_disconnected")
    assert requeued.data["position"] == 1
    assert (await desk.close("c2", "a2")).ok  # a2 has room: the requeued chat goes to a2
    assert (await desk.state("c1"))["offered_to"] == ["a2"]
    assert [a["status"] for a in await desk.query("agents.status") if a["agent_id"] == "a1"] == [
        "offline"
    ]


async def test_agent_returning_within_grace_keeps_the_chat(
    desk: Desk, service: AgentService, watch: LogWatch
) -> None:
    await desk.online("a1")
    await engaged(desk, "c1", "a1")
    await desk.do("agent.connection_lost", {"agent_id": "a1"}, agent("a1"))
    await watch.wait_for("conversation.agent_disconnected", "c1")
    assert (await desk.online("a1")).ok  # back before the grace period ends
    [back] = await watch.wait_for("conversation.agent_reconnected", "c1")
    assert back.data["agent_id"] == "a1"  # the widget stops saying "lost connection"
    deadline = datetime.now(UTC) + timedelta(seconds=1.2)
    await asyncio.sleep(
        (deadline - datetime.now(UTC)).total_seconds()
    )  # the grace period itself is what is tested
    late = await desk.do(
        "agent.expire_disconnect", {"agent_id": "a1"}, Actor(kind="system", id="test")
    )
    assert late.ok and late.event_ids == ()
    assert not watch.of("conversation.queued", "c1", reason="agent_disconnected")
    forged = await desk.do("agent.expire_disconnect", {"agent_id": "a1"}, agent("a2"))
    assert forged.code == "forbidden"
    assert (await desk.state("c1"))["agent_id"] == "a1"


async def test_close_withdraws_standing_offers(desk: Desk, watch: LogWatch) -> None:
    await desk.online("a1")
    await desk.online("a2")
    await desk.request("c1")
    assert (
        await desk.do(
            "conversation.close",
            {"conversation_id": "c1", "closed_by": "customer"},
            customer("someone-else"),
        )
    ).code == "forbidden"
    assert (
        await desk.do(
            "conversation.close",
            {"conversation_id": "c1", "closed_by": "customer"},
            customer("v-c1"),
        )
    ).ok
    [withdrawn] = await watch.wait_for("conversation.offer_withdrawn", "c1", reason="closed")
    assert withdrawn.data["agent_ids"] == ["a1", "a2"]
    assert {a["pending_offers"] for a in await desk.query("agents.status")} == {0}


def notes(watch: LogWatch, conversation_id: str) -> list[tuple[str, str]]:
    return [(e.data["kind"], e.data["text"]) for e in watch.of("message.system", conversation_id)]


async def test_accepted_transfer_tells_the_chat_who_handed_over_and_the_receiver_the_note(
    desk: Desk, watch: LogWatch
) -> None:
    await desk.publish_admin(
        "agent.created",
        {"agent_id": "a1", "email": "ann@acme.test", "name": "Ann"},
        stream="agent:a1",
    )
    await desk.publish_admin(
        "agent.created",
        {"agent_id": "a2", "email": "bob@acme.test", "name": "Bob"},
        stream="agent:a2",
    )
    await desk.online("a1")
    await engaged(desk, "c1", "a1")
    await desk.online("a2")
    assert (await transfer(desk, "c1", "a1", to_agent_id="a2", note="wants a refund")).ok
    # The receiver's console shows the offer with the sender and the note (from routing).
    [offer] = (await desk.query("agent.workspace", agent_id="a2"))["offers"]
    assert (offer["transfer_from_name"], offer["transfer_note"]) == ("Ann", "wants a refund")
    accept = desk.command(
        "conversation.accept", {"conversation_id": "c1", "agent_id": "a2"}, agent("a2")
    )
    accepted = await desk.send(accept)
    assert accepted.ok
    await watch.wait_for("message.system", "c1", kind="joined", count=2)
    assert notes(watch, "c1")[-3:] == [
        ("transferred", "Ann transferred the chat to Bob"),  # the note is not for the customer
        ("left", "Ann left the chat"),
        ("joined", "Bob has entered the chat"),
    ]
    # the notes' ids come from the command: a redelivery answers with the same ids and adds nothing
    [chat] = (await desk.query("agent.workspace", agent_id="a2"))["chats"]
    assert (chat["conversation_id"], chat["transfer_note"]) == ("c1", "wants a refund")
    handover = [e for e in watch.caused_by(accept.id) if e.type == "message.system"]
    assert len(handover) == 3 and all(e.id in accepted.event_ids for e in handover)
    redelivered = await desk.send(accept)
    assert redelivered.event_ids == accepted.event_ids

    # a later transfer without a note says just who handed over (no stale note)
    assert (await transfer(desk, "c1", "a2", to_agent_id="a1")).ok
    assert (await desk.accept("c1", "a1")).ok
    await watch.wait_for("message.system", "c1", kind="joined", count=3)
    assert notes(watch, "c1")[-3:] == [
        ("transferred", "Bob transferred the chat to Ann"),
        ("left", "Bob left the chat"),
        ("joined", "Ann has entered the chat"),
    ]
    assert [text for kind, text in notes(watch, "c1") if kind == "left"] == [
        "Ann left the chat",
        "Bob left the chat",
    ]  # the redelivery added none


async def test_agent_who_does_not_return_in_time_left_the_chat(desk: Desk, watch: LogWatch) -> None:
    await desk.online("a1")
    await engaged(desk, "c1", "a1")
    assert (await desk.do("agent.connection_lost", {"agent_id": "a1"}, agent("a1"))).ok
    await watch.wait_for("conversation.queued", "c1", reason="agent_disconnected")
    [left] = await watch.wait_for("message.system", "c1", kind="left")
    assert left.data["text"] == "a1 left the chat"  # an agent without a name is shown by id
    said = notes(watch, "c1")
    assert said[said.index(("left", "a1 left the chat")) + 1] == (
        "notice",
        "We are finding another agent for you.",
    )


async def test_customer_ending_the_chat_left_it_and_an_agent_closing_does_not_say_so(
    desk: Desk, watch: LogWatch
) -> None:
    await desk.online("a1")
    await desk.request("c1", visitor={"id": "v-c1", "name": "Vera"})
    assert (await desk.accept("c1", "a1")).ok
    assert (
        await desk.do(
            "conversation.close",
            {"conversation_id": "c1", "closed_by": "customer"},
            customer("v-c1"),
        )
    ).ok
    await watch.wait_for("message.system", "c1", kind="closed")
    assert notes(watch, "c1")[-2:] == [
        ("left", "Vera left the chat"),
        ("closed", "The conversation was closed by the customer"),
    ]

    await desk.request("c2")
    assert (await desk.accept("c2", "a1")).ok
    assert (await desk.close("c2", "a1")).ok
    await watch.wait_for("message.system", "c2", kind="closed")
    assert not watch.of("message.system", "c2", kind="left")


async def test_a_removed_agents_chats_go_back_to_routing(desk: Desk, watch: LogWatch) -> None:
    """Their removal (the admin side's event, read from the log) hands their chats on: they
    stayed engaged with nobody (found using it: the customer read "Carol is here to help")."""
    await desk.online("a1")
    await engaged(desk, "c1", "a1")
    await desk.online("a2")
    await desk.publish_admin("agent.removed", {"agent_id": "a1"}, stream="agent:a1")
    # once each: back in the queue, then offered to the one agent left
    await watch.wait_for("conversation.queued", "c1", reason="requeued")
    await watch.wait_for("conversation.offered", "c1", agent_ids=["a2"])
    assert (await desk.accept("c1", "a2")).ok
