"""Routing decisions, pure: given events on the log, when a command, then events or a rejection."""

from datetime import timedelta
from typing import Any

from agent_service import fold
from agent_service.queries import Queries
from agent_service.state import RoutingState
from contracts import Envelope
from contracts.queries.agent import AgentsStatusQuery
from tests.deciders.harness import (
    NOW,
    SYSTEM,
    TENANT,
    Clock,
    agent,
    command,
    customer,
    event,
    routing_desk,
)


def online(agent_id: str, max_chats: int | None = None) -> Envelope:
    data: dict[str, Any] = {"agent_id": agent_id, "status": "online"}
    if max_chats is not None:
        data["max_chats"] = max_chats
    return event("agent.status_changed", data, actor=agent(agent_id), stream=f"agent:{agent_id}")


def requested(conversation_id: str, visitor_id: str = "v1") -> Envelope:
    data = {"conversation_id": conversation_id, "visitor": {"id": visitor_id, "name": "Vi"}}
    return event(
        "conversation.requested", data, actor=customer(visitor_id), stream=f"conv:{conversation_id}"
    )


def offered(conversation_id: str, *agent_ids: str, **extra: Any) -> Envelope:
    data = {"conversation_id": conversation_id, "agent_ids": agent_ids, "expires_in_s": 60}
    return event("conversation.offered", {**data, **extra}, actor=SYSTEM)


def accepted(conversation_id: str, agent_id: str) -> Envelope:
    data = {"conversation_id": conversation_id, "agent_id": agent_id}
    return event("conversation.accepted", data, actor=agent(agent_id))


def closed(conversation_id: str) -> Envelope:
    data = {"conversation_id": conversation_id, "closed_by": "agent"}
    return event("conversation.closed", data, actor=agent("a1"))


def settings(**after: Any) -> Envelope:
    return event("tenant.settings_changed", {"before": {}, "after": after})


def request(conversation_id: str, visitor_id: str = "v1") -> Envelope:
    data = {"conversation_id": conversation_id, "visitor": {"id": visitor_id}}
    return command("conversation.request", data, actor=customer(visitor_id))


def accept(conversation_id: str, agent_id: str) -> Envelope:
    data = {"conversation_id": conversation_id, "agent_id": agent_id}
    return command("conversation.accept", data, actor=agent(agent_id))


def engaged(conversation_id: str, agent_id: str) -> tuple[Envelope, ...]:
    return (
        requested(conversation_id),
        offered(conversation_id, agent_id),
        accepted(conversation_id, agent_id),
    )


def agent_closes(conversation_id: str, agent_id: str) -> Envelope:
    data = {"conversation_id": conversation_id, "closed_by": "agent"}
    return command("conversation.close", data, actor=agent(agent_id))


def notes(desk: Any) -> list[str]:
    return [data["kind"] for data in desk.of("message.system")]


class TestRequest:
    async def test_an_agent_online_with_room_is_offered_the_new_conversation(self) -> None:
        desk = routing_desk().given(online("a1"))
        reply = await desk.when(request("c1"))
        assert desk.types == ["conversation.requested", "message.system", "conversation.offered"]
        assert desk.of("conversation.offered")[0]["agent_ids"] == ["a1"]
        assert reply.ok and reply.data["status"] == "offered"
        assert list(reply.event_ids) == [e.id for e in desk.published.events]

    async def test_with_every_agent_at_their_limit_it_is_queued_behind_the_waiting_ones(
        self,
    ) -> None:
        desk = routing_desk().given(online("a1", max_chats=1), *engaged("c0", "a1"))
        reply = await desk.when(request("c1"))
        assert desk.types == ["conversation.requested", "message.system", "conversation.queued"]
        assert desk.of("conversation.queued")[0]["position"] == 1
        assert reply.data["queue_position"] == 1

    async def test_with_nobody_online_it_is_missed_and_the_visitor_told(self) -> None:
        desk = routing_desk()
        await desk.when(request("c1"))
        assert desk.types == [
            "conversation.requested",
            "message.system",
            "conversation.missed",
            "message.system",
        ]
        assert desk.of("conversation.missed")[0]["reason"] == "no_agent_online"
        assert notes(desk) == ["notice", "missed"]

    async def test_outside_business_hours_the_miss_says_so(self) -> None:
        desk = routing_desk().given(settings(business_hours={"sun": [["09:00", "17:00"]]}))
        await desk.when(request("c1"))
        assert desk.of("conversation.missed")[0]["reason"] == "outside_business_hours"

    async def test_a_second_start_of_the_same_conversation_changes_nothing(self) -> None:
        desk = routing_desk().given(online("a1"), requested("c1"), offered("c1", "a1"))
        reply = await desk.when(request("c1"))
        assert reply.ok and desk.types == []


class TestAccept:
    async def test_the_first_accept_wins_and_the_other_offers_are_withdrawn(self) -> None:
        desk = routing_desk().given(online("a1"), online("a2"), requested("c1"))
        desk.given(offered("c1", "a1", "a2"))
        reply = await desk.when(accept("c1", "a1"))
        assert desk.types == [
            "conversation.accepted",
            "conversation.offer_withdrawn",
            "message.system",
        ]
        assert desk.of("conversation.offer_withdrawn")[0]["agent_ids"] == ["a2"]
        assert notes(desk) == ["joined"]
        assert reply.ok and reply.data == {
            "status": "engaged",
            "agent_id": "a1",
            "queue_position": None,
        }

    async def test_the_race_loser_is_rejected_on_the_log_as_already_assigned(self) -> None:
        desk = routing_desk().given(online("a1"), online("a2"), requested("c1"))
        desk.given(offered("c1", "a1", "a2"), accepted("c1", "a1"))
        loser = accept("c1", "a2")
        reply = await desk.when(loser)
        assert desk.types == ["command.rejected"]
        [rejection] = desk.published.events
        assert rejection.causation_id == loser.id and rejection.stream == "conv:c1"
        assert rejection.data == {
            "command_id": loser.id,
            "command_type": "conversation.accept",
            "reason": "already_assigned",
            "detail": "another agent already has this conversation",
        }
        assert not reply.ok and reply.code == "already_assigned"
        assert reply.event_ids == (rejection.id,)

    async def test_an_agent_accepts_for_themselves_only(self) -> None:
        desk = routing_desk().given(online("a1"), requested("c1"), offered("c1", "a1"))
        reply = await desk.when(
            command(
                "conversation.accept",
                {"conversation_id": "c1", "agent_id": "a1"},
                actor=agent("a2"),
            )
        )
        assert desk.types == ["command.rejected"] and reply.code == "forbidden"

    async def test_an_unknown_conversation_is_not_found(self) -> None:
        desk = routing_desk().given(online("a1"))
        reply = await desk.when(accept("nope", "a1"))
        assert desk.types == ["command.rejected"] and reply.code == "not_found"


class TestDecline:
    async def test_a_decline_in_round_robin_offers_the_chat_to_the_next_agent(self) -> None:
        desk = routing_desk().given(settings(routing_mode="round_robin"), online("a1"))
        desk.given(online("a2"), requested("c1"), offered("c1", "a1"))
        reply = await desk.when(
            command(
                "conversation.decline",
                {"conversation_id": "c1", "agent_id": "a1"},
                actor=agent("a1"),
            )
        )
        assert desk.types == ["conversation.offer_declined", "conversation.offered"]
        assert desk.of("conversation.offered")[0]["agent_ids"] == ["a2"]
        assert reply.ok

    async def test_declining_an_offer_one_does_not_hold_is_rejected(self) -> None:
        desk = routing_desk().given(online("a1"), online("a2"), requested("c1"))
        desk.given(offered("c1", "a1"))
        reply = await desk.when(
            command(
                "conversation.decline",
                {"conversation_id": "c1", "agent_id": "a2"},
                actor=agent("a2"),
            )
        )
        assert desk.types == ["command.rejected"] and reply.code == "not_offered"


class TestOfferExpiry:
    async def test_an_unanswered_offer_is_withdrawn_at_expiry_and_the_chat_re_offered(
        self,
    ) -> None:
        clock = Clock()
        desk = routing_desk(clock).given(online("a1"), online("a2"), requested("c1"))
        desk.given(offered("c1", "a1"))
        clock.now = NOW + timedelta(seconds=61)
        await desk.when(
            command("conversation.expire_offers", {"conversation_id": "c1"}, actor=SYSTEM)
        )
        assert desk.types == ["conversation.offer_withdrawn", "conversation.offered"]
        assert desk.of("conversation.offer_withdrawn")[0]["reason"] == "expired"
        assert desk.of("conversation.offered")[0]["agent_ids"] == ["a2"]

    async def test_a_timer_firing_before_the_expiry_changes_nothing(self) -> None:
        desk = routing_desk().given(online("a1"), requested("c1"), offered("c1", "a1"))
        reply = await desk.when(
            command("conversation.expire_offers", {"conversation_id": "c1"}, actor=SYSTEM)
        )
        assert reply.ok and desk.types == []

    async def test_only_the_service_sends_timer_commands(self) -> None:
        desk = routing_desk().given(online("a1"), requested("c1"), offered("c1", "a1"))
        reply = await desk.when(
            command("conversation.expire_offers", {"conversation_id": "c1"}, actor=customer("v1"))
        )
        assert desk.types == ["command.rejected"] and reply.code == "forbidden"


class TestTransfer:
    async def test_a_transfer_offers_the_chat_to_the_named_agent(self) -> None:
        desk = routing_desk().given(online("a1"), online("a2"), *engaged("c1", "a1"))
        reply = await desk.when(
            command(
                "conversation.transfer",
                {
                    "conversation_id": "c1",
                    "from_agent_id": "a1",
                    "to_agent_id": "a2",
                    "note": "VIP",
                },
                actor=agent("a1"),
            )
        )
        assert desk.types == ["conversation.transfer_requested", "conversation.offered"]
        assert desk.of("conversation.offered")[0]["transfer_from"] == "a1"
        assert reply.data["status"] == "transfer_pending"

    async def test_accepting_a_transfer_moves_the_chat_and_tells_both_sides(self) -> None:
        desk = routing_desk().given(online("a1"), online("a2"), *engaged("c1", "a1"))
        transfer = {"conversation_id": "c1", "from_agent_id": "a1", "to_agent_id": "a2"}
        desk.given(
            event("conversation.transfer_requested", {**transfer, "note": "VIP"}),
            offered("c1", "a2", transfer_from="a1"),
        )
        reply = await desk.when(accept("c1", "a2"))
        assert desk.types == ["conversation.transferred", *["message.system"] * 3]
        # named, like an accept: the widget's header said "An agent is here to help" after it
        assert desk.of("conversation.transferred")[0]["agent_name"] == "a2"
        assert notes(desk) == ["transferred", "left", "joined"]
        # the note is for the receiving agent: the chat lines (which the customer sees) omit it
        assert all("VIP" not in data["text"] for data in desk.of("message.system"))
        assert reply.data["agent_id"] == "a2"

    async def test_a_declined_transfer_is_returned_to_the_agent_who_asked(self) -> None:
        desk = routing_desk().given(online("a1"), online("a2"), *engaged("c1", "a1"))
        transfer = {"conversation_id": "c1", "from_agent_id": "a1", "to_agent_id": "a2"}
        desk.given(
            event("conversation.transfer_requested", transfer),
            offered("c1", "a2", transfer_from="a1"),
        )
        reply = await desk.when(
            command(
                "conversation.decline",
                {"conversation_id": "c1", "agent_id": "a2"},
                actor=agent("a2"),
            )
        )
        assert desk.types == ["conversation.offer_declined", "conversation.transfer_returned"]
        assert desk.of("conversation.transfer_returned")[0] == {
            "conversation_id": "c1",
            "from_agent_id": "a1",
            "reason": "declined",
            "by_agent_id": "a2",
        }
        assert reply.data["status"] == "engaged" and reply.data["agent_id"] == "a1"

    async def test_an_expired_transfer_is_returned_to_the_agent_who_asked(self) -> None:
        clock = Clock()
        desk = routing_desk(clock).given(online("a1"), online("a2"), *engaged("c1", "a1"))
        transfer = {"conversation_id": "c1", "from_agent_id": "a1", "to_group": "g1"}
        desk.given(
            event("conversation.transfer_requested", transfer),
            offered("c1", "a2", "a3", transfer_from="a1"),
        )
        clock.now = NOW + timedelta(seconds=61)
        await desk.when(
            command("conversation.expire_offers", {"conversation_id": "c1"}, actor=SYSTEM)
        )
        assert desk.types == ["conversation.offer_withdrawn", "conversation.transfer_returned"]
        returned = desk.of("conversation.transfer_returned")[0]
        assert (returned["from_agent_id"], returned["reason"]) == ("a1", "expired")

    async def test_one_of_a_group_declining_leaves_the_transfer_pending(self) -> None:
        desk = routing_desk().given(online("a1"), online("a2"), online("a3"), *engaged("c1", "a1"))
        transfer = {"conversation_id": "c1", "from_agent_id": "a1", "to_group": "g1"}
        desk.given(
            event("conversation.transfer_requested", transfer),
            offered("c1", "a2", "a3", transfer_from="a1"),
        )
        reply = await desk.when(
            command(
                "conversation.decline",
                {"conversation_id": "c1", "agent_id": "a2"},
                actor=agent("a2"),
            )
        )
        assert desk.types == ["conversation.offer_declined"]
        assert reply.data["status"] == "transfer_pending"

    async def test_nobody_with_room_to_take_it_is_unavailable(self) -> None:
        desk = routing_desk().given(online("a1"), *engaged("c1", "a1"))
        reply = await desk.when(
            command(
                "conversation.transfer",
                {"conversation_id": "c1", "from_agent_id": "a1", "to_agent_id": "a2"},
                actor=agent("a1"),
            )
        )
        assert desk.types == ["command.rejected"] and reply.code == "unavailable"


class TestCloseAndRate:
    async def test_closing_an_engaged_chat_frees_the_agent_for_the_queue(self) -> None:
        desk = routing_desk().given(online("a1", max_chats=1), *engaged("c1", "a1"))
        desk.given(
            requested("c2", "v2"),
            event("conversation.queued", {"conversation_id": "c2", "position": 1}),
        )
        await desk.when(agent_closes("c1", "a1"))
        assert desk.types == ["conversation.closed", "message.system", "conversation.offered"]
        assert desk.of("conversation.offered")[0] == {
            "conversation_id": "c2",
            "agent_ids": ["a1"],
            "expires_in_s": 60,
            "transfer_from": None,
        }

    async def test_closing_a_chat_joins_the_broadcast_offer_made_while_the_agent_was_full(
        self,
    ) -> None:
        # c2 came while a1 was at their limit, so it was offered to a2 alone; a1 closing c1
        # has room again and is offered c2 too, for the time left, rather than seeing nothing
        clock = Clock()
        desk = routing_desk(clock).given(online("a1", max_chats=1), online("a2"))
        desk.given(*engaged("c1", "a1"), requested("c2", "v2"), offered("c2", "a2"))
        clock.now = NOW + timedelta(seconds=15)
        await desk.when(agent_closes("c1", "a1"))
        assert desk.types == ["conversation.closed", "message.system", "conversation.offered"]
        assert desk.of("conversation.offered")[0]["agent_ids"] == ["a1"]
        assert desk.of("conversation.offered")[0]["expires_in_s"] == 45

    async def test_a_customer_closes_their_own_chat_only(self) -> None:
        desk = routing_desk().given(online("a1"), *engaged("c1", "a1"))
        reply = await desk.when(
            command(
                "conversation.close",
                {"conversation_id": "c1", "closed_by": "customer"},
                actor=customer("someone-else"),
            )
        )
        assert desk.types == ["command.rejected"] and reply.code == "forbidden"

    async def test_a_closed_chat_is_rated_once(self) -> None:
        desk = routing_desk().given(online("a1"), *engaged("c1", "a1"), closed("c1"))
        rate = {"conversation_id": "c1", "score": 5}
        await desk.when(command("conversation.rate", rate, actor=customer("v1")))
        assert desk.of("conversation.rated") == [
            {"conversation_id": "c1", "score": 5, "comment": None}
        ]
        desk.given(*desk.published.events)
        again = await desk.when(command("conversation.rate", rate, actor=customer("v1")))
        assert desk.types == ["command.rejected"] and again.code == "already_rated"

    async def test_an_open_chat_is_not_rated(self) -> None:
        desk = routing_desk().given(online("a1"), *engaged("c1", "a1"))
        reply = await desk.when(
            command(
                "conversation.rate", {"conversation_id": "c1", "score": 4}, actor=customer("v1")
            )
        )
        assert desk.types == ["command.rejected"] and reply.code == "not_closed"


class TestAgentStatus:
    async def test_coming_online_takes_a_chat_missed_moments_ago(self) -> None:
        clock = Clock()
        desk = routing_desk(clock).given(requested("c1"))
        desk.given(event("conversation.missed", {"conversation_id": "c1"}))
        clock.now = NOW + timedelta(seconds=30)
        await desk.when(
            command("agent.set_status", {"agent_id": "a1", "status": "online"}, actor=agent("a1"))
        )
        assert desk.types == ["agent.status_changed", "conversation.offered"]

    async def test_a_chat_missed_long_ago_is_not_offered_as_a_live_request(self) -> None:
        # Its customer wrote 5 minutes ago: offering it would read "waiting 5m" and take up
        # a place of the agent's chat limit for somebody who is likely gone. It stays in
        # the queue, where an agent may still pick it up.
        clock = Clock()
        desk = routing_desk(clock).given(requested("c1"))
        desk.given(event("conversation.missed", {"conversation_id": "c1"}))
        clock.now = NOW + timedelta(minutes=5)
        await desk.when(
            command("agent.set_status", {"agent_id": "a1", "status": "online"}, actor=agent("a1"))
        )
        assert desk.types == ["agent.status_changed"]
        picked = await desk.when(accept("c1", "a1"))
        assert picked.ok and desk.types == ["conversation.accepted", "message.system"]

    async def test_a_customer_writing_again_brings_a_missed_chat_back_to_the_next_agent(
        self,
    ) -> None:
        clock = Clock()
        desk = routing_desk(clock).given(requested("c1"))
        desk.given(event("conversation.missed", {"conversation_id": "c1"}))
        said = {
            "conversation_id": "c1",
            "message_id": "m1",
            "body": "still there?",
            "author_kind": "customer",
            "author_id": "v1",
        }
        desk.given(event("message.sent", said, actor=customer("v1"), at=NOW + timedelta(minutes=4)))
        clock.now = NOW + timedelta(minutes=4, seconds=20)
        await desk.when(
            command("agent.set_status", {"agent_id": "a1", "status": "online"}, actor=agent("a1"))
        )
        assert desk.types == ["agent.status_changed", "conversation.offered"]

    async def test_coming_online_takes_the_queued_chat(self) -> None:
        desk = routing_desk().given(
            requested("c1"), event("conversation.queued", {"conversation_id": "c1", "position": 1})
        )
        await desk.when(
            command("agent.set_status", {"agent_id": "a1", "status": "online"}, actor=agent("a1"))
        )
        assert desk.types == ["agent.status_changed", "conversation.offered"]

    async def test_going_away_withdraws_the_offers_one_holds(self) -> None:
        desk = routing_desk().given(online("a1"), requested("c1"), offered("c1", "a1"))
        await desk.when(
            command("agent.set_status", {"agent_id": "a1", "status": "away"}, actor=agent("a1"))
        )
        assert desk.types[:2] == ["agent.status_changed", "conversation.offer_withdrawn"]
        assert desk.of("conversation.offer_withdrawn")[0]["reason"] == "agent_offline"

    async def test_coming_online_joins_a_broadcast_offer_standing_for_others(self) -> None:
        # a2 signed in 20 s after c1 was offered to a1 (away from the desk): a2 saw "No one
        # is waiting" until a1's offer ran out. Now a2 is offered it for the 40 s it has left,
        # and the first accept still wins.
        clock = Clock()
        desk = routing_desk(clock).given(online("a1"), requested("c1"), offered("c1", "a1"))
        clock.now = NOW + timedelta(seconds=20)
        await desk.when(
            command("agent.set_status", {"agent_id": "a2", "status": "online"}, actor=agent("a2"))
        )
        assert desk.types == ["agent.status_changed", "conversation.offered"]
        assert desk.of("conversation.offered")[0] == {
            "conversation_id": "c1",
            "agent_ids": ["a2"],
            "expires_in_s": 40,
            "transfer_from": None,
        }
        won = await desk.when(accept("c1", "a2"))
        assert won.ok and desk.of("conversation.offer_withdrawn")[0]["agent_ids"] == ["a1"]
        lost = await desk.when(accept("c1", "a1"))
        assert not lost.ok

    async def test_a_standing_offer_is_not_joined_by_who_declined_it_or_has_no_room(
        self,
    ) -> None:
        desk = routing_desk().given(online("a1"), online("a2"), requested("c1"))
        desk.given(offered("c1", "a1", "a2"))
        desk.given(
            event("conversation.offer_declined", {"conversation_id": "c1", "agent_id": "a2"})
        )
        desk.given(event("agent.status_changed", {"agent_id": "a2", "status": "away"}))
        desk.given(online("a3", max_chats=1), *engaged("c0", "a3"))
        desk.given(event("agent.status_changed", {"agent_id": "a3", "status": "away"}))
        for agent_id in ("a2", "a3"):
            await desk.when(
                command(
                    "agent.set_status",
                    {"agent_id": agent_id, "status": "online"},
                    actor=agent(agent_id),
                )
            )
            assert desk.types == ["agent.status_changed"]

    async def test_an_offer_made_to_one_agent_is_not_joined(self) -> None:
        # round_robin and least_busy offer a chat to one agent on purpose
        desk = routing_desk().given(settings(routing_mode="round_robin"), online("a1"))
        desk.given(requested("c1"), offered("c1", "a1"))
        await desk.when(
            command("agent.set_status", {"agent_id": "a2", "status": "online"}, actor=agent("a2"))
        )
        assert desk.types == ["agent.status_changed"]

    async def test_an_agent_sets_their_own_status_only(self) -> None:
        desk = routing_desk()
        reply = await desk.when(
            command("agent.set_status", {"agent_id": "a1", "status": "online"}, actor=agent("a2"))
        )
        assert desk.types == ["command.rejected"] and reply.code == "forbidden"


class TestDisconnectGrace:
    async def test_a_lost_connection_tells_the_customers_and_starts_the_grace(self) -> None:
        desk = routing_desk().given(online("a1"), *engaged("c1", "a1"))
        await desk.when(command("agent.connection_lost", {"agent_id": "a1"}, actor=SYSTEM))
        assert desk.types == [
            "agent.disconnected",
            "conversation.agent_disconnected",
            "message.system",
        ]
        assert desk.of("agent.disconnected") == [{"agent_id": "a1", "grace_s": 30}]

    async def test_an_agent_back_within_the_grace_is_announced_to_their_chats(self) -> None:
        desk = routing_desk().given(online("a1"), *engaged("c1", "a1"), *engaged("c2", "a1"))
        desk.given(event("agent.disconnected", {"agent_id": "a1", "grace_s": 30}, actor=SYSTEM))
        await desk.when(
            command("agent.set_status", {"agent_id": "a1", "status": "online"}, actor=agent("a1"))
        )
        assert desk.types[0] == "agent.status_changed"
        back = desk.of("conversation.agent_reconnected")
        assert [b["conversation_id"] for b in back] == ["c1", "c2"]
        assert all(b["agent_id"] == "a1" and b["agent_name"] for b in back)
        notes = [n for n in desk.of("message.system") if n["kind"] == "notice"]
        assert [n["conversation_id"] for n in notes] == ["c1", "c2"]
        assert all(n["text"].endswith("is back.") for n in notes)

    async def test_a_status_with_no_reported_loss_announces_nothing(self) -> None:
        # a console reload within the gateway's reconnect window: the loss was never reported
        desk = routing_desk().given(online("a1"), *engaged("c1", "a1"))
        await desk.when(
            command("agent.set_status", {"agent_id": "a1", "status": "online"}, actor=agent("a1"))
        )
        assert "conversation.agent_reconnected" not in desk.types

    async def test_going_offline_after_a_lost_connection_is_no_return(self) -> None:
        desk = routing_desk().given(online("a1"), *engaged("c1", "a1"))
        desk.given(event("agent.disconnected", {"agent_id": "a1", "grace_s": 30}, actor=SYSTEM))
        await desk.when(
            command("agent.set_status", {"agent_id": "a1", "status": "offline"}, actor=agent("a1"))
        )
        assert "conversation.agent_reconnected" not in desk.types

    async def test_offers_stand_through_the_grace_so_a_reload_finds_them(self) -> None:
        desk = routing_desk().given(online("a1"), requested("c1"), offered("c1", "a1"))
        await desk.when(command("agent.connection_lost", {"agent_id": "a1"}, actor=SYSTEM))
        assert desk.types == ["agent.disconnected"]
        reply = await desk.when(accept("c1", "a1"))  # the reloaded console accepts it
        assert reply.ok and desk.types == ["conversation.accepted", "message.system"]

    async def test_a_transfer_offered_to_an_agent_who_never_returns_goes_back_to_the_sender(
        self,
    ) -> None:
        clock = Clock()
        desk = routing_desk(clock).given(online("a1"), online("a2"), *engaged("c1", "a1"))
        transfer = {"conversation_id": "c1", "from_agent_id": "a1", "to_agent_id": "a2"}
        desk.given(
            event("conversation.transfer_requested", transfer),
            offered("c1", "a2", transfer_from="a1"),
            event("agent.disconnected", {"agent_id": "a2", "grace_s": 30}, actor=SYSTEM),
        )
        clock.now = NOW + timedelta(seconds=31)
        await desk.when(command("agent.expire_disconnect", {"agent_id": "a2"}, actor=SYSTEM))
        assert desk.types == [
            "agent.status_changed",
            "conversation.offer_withdrawn",
            "conversation.transfer_returned",
        ]
        assert desk.of("conversation.transfer_returned")[0]["reason"] == "agent_offline"

    async def test_after_the_grace_the_chats_go_back_to_routing(self) -> None:
        clock = Clock()
        desk = routing_desk(clock).given(online("a1"), *engaged("c1", "a1"))
        desk.given(event("agent.disconnected", {"agent_id": "a1", "grace_s": 30}, actor=SYSTEM))
        clock.now = NOW + timedelta(seconds=31)
        await desk.when(command("agent.expire_disconnect", {"agent_id": "a1"}, actor=SYSTEM))
        assert desk.types[:4] == [
            "agent.status_changed",
            "conversation.queued",
            "message.system",
            "message.system",
        ]
        assert desk.of("agent.status_changed") == [
            {"agent_id": "a1", "status": "offline", "max_chats": None}
        ]
        assert desk.of("conversation.missed")[0]["reason"] == "no_agent_online"

    async def test_an_agent_back_within_the_grace_keeps_their_chats(self) -> None:
        clock = Clock()
        desk = routing_desk(clock).given(online("a1"), *engaged("c1", "a1"))
        desk.given(
            event("agent.disconnected", {"agent_id": "a1", "grace_s": 30}, actor=SYSTEM),
            online("a1"),  # any event of theirs: they are back
        )
        clock.now = NOW + timedelta(seconds=31)
        reply = await desk.when(
            command("agent.expire_disconnect", {"agent_id": "a1"}, actor=SYSTEM)
        )
        assert reply.ok and desk.types == []


class TestRemovedAgent:
    """Found using it: an agent removed while holding a chat left it engaged with nobody (the
    customer read "Carol is here to help" for good) and their offers standing."""

    @staticmethod
    def removed(agent_id: str) -> Envelope:
        return event("agent.removed", {"agent_id": agent_id}, stream=f"agent:{agent_id}")

    async def test_their_chats_and_offers_go_to_someone_else(self) -> None:
        desk = routing_desk().given(online("a1"), online("a2"), *engaged("c1", "a1"))
        desk.given(requested("c2"), offered("c2", "a1"), self.removed("a1"))
        reply = await desk.when(command("agent.release_removed", {"agent_id": "a1"}, actor=SYSTEM))
        assert reply.ok and desk.types == [
            "conversation.offer_withdrawn",  # c2: offered to a1 only, offered again below
            "conversation.offered",
            "conversation.queued",  # c1: back in the queue, said in the chat, offered again
            "message.system",
            "message.system",
            "conversation.offered",
        ]
        assert desk.of("conversation.offer_withdrawn") == [
            {"conversation_id": "c2", "agent_ids": ["a1"], "reason": "agent_offline"}
        ]
        assert desk.of("conversation.queued") == [
            {"conversation_id": "c1", "position": 1, "reason": "requeued"}
        ]
        assert notes(desk) == ["left", "notice"]
        offers = {o["conversation_id"]: o["agent_ids"] for o in desk.of("conversation.offered")}
        assert offers == {"c1": ["a2"], "c2": ["a2"]}

    async def test_only_our_timer_asks_and_only_for_a_removed_agent(self) -> None:
        desk = routing_desk().given(online("a1"), online("a2"), *engaged("c1", "a1"))
        not_removed = await desk.when(
            command("agent.release_removed", {"agent_id": "a1"}, actor=SYSTEM)
        )
        assert not_removed.ok and desk.types == []
        desk.given(self.removed("a1"))
        from_an_agent = await desk.when(
            command("agent.release_removed", {"agent_id": "a1"}, actor=agent("a2"))
        )
        assert from_an_agent.code == "forbidden" and desk.types == ["command.rejected"]


class TestConnectedInTheAgentsStatus:
    """``GET /api/admin/agents/status`` said ``connected: true`` for an agent whose grace had
    run out (offline, their console long gone) and for one who had never signed in."""

    @staticmethod
    def connected(*events: Envelope) -> dict[str, bool]:
        state = RoutingState()
        for logged in events:
            fold.apply(state, logged)
        answer = Queries(lambda: state).agents_status(AgentsStatusQuery(tenant=TENANT))
        return {status.agent_id: status.connected for status in answer}

    def test_connected_from_their_console_until_the_connection_is_lost(self) -> None:
        created = event("agent.created", {"agent_id": "a2", "email": "bo@acme.test", "name": "Bo"})
        lost = event("agent.disconnected", {"agent_id": "a1", "grace_s": 30}, actor=SYSTEM)
        expired = event(
            "agent.status_changed", {"agent_id": "a1", "status": "offline"}, actor=SYSTEM
        )
        assert self.connected(online("a1"), created) == {"a1": True, "a2": False}
        assert self.connected(online("a1"), lost) == {"a1": False}
        assert self.connected(online("a1"), lost, expired) == {"a1": False}
        assert self.connected(online("a1"), lost, expired, online("a1")) == {"a1": True}

    def test_an_agent_who_chose_offline_with_the_console_open_is_still_connected(self) -> None:
        away = event(
            "agent.status_changed", {"agent_id": "a1", "status": "offline"}, actor=agent("a1")
        )
        assert self.connected(online("a1"), away) == {"a1": True}
