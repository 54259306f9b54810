"""What-if routing, pure: a recorded range decided again by the routing decider under other
settings (tools/replay/what_if.py), compared with what happened by one measure."""

from datetime import timedelta
from typing import Any

import pytest

from contracts import Envelope
from tests.deciders.harness import NOW, SYSTEM, TENANT, agent, customer, event
from tools.replay.what_if import Comparison, simulate
from tools.replay.what_if_changes import WhatIfRefused, parse_changes

UNTIL = NOW + timedelta(minutes=10)


def at(seconds: float) -> Any:
    return NOW + timedelta(seconds=seconds)


def online(agent_id: str, t: float = 0) -> Envelope:
    data = {"agent_id": agent_id, "status": "online"}
    return event(
        "agent.status_changed", data, actor=agent(agent_id), stream=f"agent:{agent_id}", at=at(t)
    )


def served(
    conversation_id: str,
    agent_id: str,
    *,
    requested: float,
    accepted: float,
    closed: float,
    offered_to: tuple[str, ...] | None = None,
) -> list[Envelope]:
    """A conversation as the log recorded it: requested, offered, accepted (the others'
    offers withdrawn), closed."""
    stream = f"conv:{conversation_id}"
    conv = {"conversation_id": conversation_id}
    others = tuple(a for a in offered_to or () if a != agent_id)
    withdrawn = {**conv, "agent_ids": others, "reason": "accepted_by_other"}
    return [
        event(
            "conversation.requested",
            {**conv, "visitor": {"id": f"v-{conversation_id}"}},
            actor=customer(f"v-{conversation_id}"),
            stream=stream,
            at=at(requested),
        ),
        event(
            "conversation.offered",
            {**conv, "agent_ids": offered_to or (agent_id,), "expires_in_s": 60},
            actor=SYSTEM,
            stream=stream,
            at=at(requested),
        ),
        event(
            "conversation.accepted",
            {**conv, "agent_id": agent_id},
            actor=agent(agent_id),
            stream=stream,
            at=at(accepted),
        ),
        *(
            [event("conversation.offer_withdrawn", withdrawn, stream=stream, at=at(accepted))]
            if others
            else []
        ),
        event(
            "conversation.closed",
            {**conv, "closed_by": "agent"},
            actor=agent(agent_id),
            stream=stream,
            at=at(closed),
        ),
    ]


def in_log_order(*groups: list[Envelope]) -> list[Envelope]:
    events = [e for group in groups for e in group]
    return sorted(events, key=lambda e: e.occurred_at)  # stable: a step's events keep their order


def what_if(events: list[Envelope], *pairs: str) -> Comparison:
    return simulate(TENANT, events, NOW, UNTIL, parse_changes(pairs))


def loads(outcome: Any) -> dict[str, tuple[int, int]]:
    return {a: (load.conversations, load.peak) for a, load in outcome.load.items()}


# a1 takes c1 (2 s to accept, a minute long); c2 comes while c1 is open, also taken in 2 s.
TWO_AT_ONCE = in_log_order(
    [online("a1")],
    served("c1", "a1", requested=1, accepted=3, closed=63),
    served("c2", "a1", requested=10, accepted=12, closed=70),
)


class TestChatLimits:
    def test_with_nothing_changed_the_replay_is_what_happened(self) -> None:
        result = what_if(TWO_AT_ONCE)
        assert result.simulated.as_json() == result.actual.as_json()
        assert result.actual.waits_s == [2.0, 2.0]
        assert loads(result.actual) == {"a1": (2, 2)}

    def test_with_a_limit_of_one_the_second_request_waits_for_the_first_chat_to_end(
        self,
    ) -> None:
        result = what_if(TWO_AT_ONCE, "max_chats_default=1")
        # c2 is offered when c1 closes (63 s) and taken 2 s later: 55 s after its request
        assert result.simulated.waits_s == [2.0, 55.0]
        assert result.simulated.missed == 0
        assert loads(result.simulated) == {"a1": (2, 1)}
        assert result.actual.waits_s == [2.0, 2.0]

    def test_with_a_limit_of_two_it_does_not_wait(self) -> None:
        assert what_if(TWO_AT_ONCE, "max_chats_default=1", "max_chats.a1=2").simulated.waits_s == [
            2.0,
            2.0,
        ]


class TestTheRangesStart:
    def test_who_was_online_and_their_chats_in_progress_carry_into_the_range(self) -> None:
        events = in_log_order(
            [online("a1")],
            served("c0", "a1", requested=1, accepted=2, closed=100),  # under way at 10 s
            served("c1", "a1", requested=50, accepted=52, closed=90),
        )
        result = simulate(TENANT, events, at(10), UNTIL, parse_changes(["max_chats_default=1"]))
        assert result.actual.as_json()["agents"] == {
            "a1": {"conversations": 1, "peak_concurrent": 2}
        }
        # a1 is online and busy with c0 until 100 s; c1's customer left at 90 s, unanswered
        assert (result.simulated.requests, result.simulated.missed) == (1, 1)
        assert loads(result.simulated) == {"a1": (0, 1)}
        closed = [
            (e.data["conversation_id"], e.data["closed_by"], e.occurred_at)
            for e in result.log
            if e.type == "conversation.closed"
        ]
        assert closed == [("c1", "customer", at(90)), ("c0", "agent", at(100))]

    def test_presence_changes_are_replayed_at_their_times(self) -> None:
        away = event(
            "agent.status_changed",
            {"agent_id": "a2", "status": "away"},
            actor=agent("a2"),
            stream="agent:a2",
            at=at(30),
        )
        events = in_log_order(
            [online("a1"), online("a2"), away],
            served("c0", "a1", requested=5, accepted=6, closed=200),
            served("c1", "a1", requested=40, accepted=42, closed=90),
        )
        # least busy would give c1 to the idle a2, had she not gone away before it came
        result = what_if(events, "routing_mode=least_busy")
        assert loads(result.simulated) == {"a1": (2, 2)}
        assert result.simulated.waits_s == [1.0, 2.0]


class TestOfferTimeout:
    def test_a_shorter_offer_timeout_turns_a_slow_accept_into_a_missed_conversation(
        self,
    ) -> None:
        slow = in_log_order(
            [online("a1")], served("c1", "a1", requested=1, accepted=41, closed=100)
        )
        assert what_if(slow).simulated.as_json() == what_if(slow).actual.as_json()
        result = what_if(slow, "offer_timeout_s=30")
        # offered at 1 s, gone at 31 s; offered again, gone again: the accept always comes late
        assert result.simulated.missed == 1 and result.simulated.accepted == 0
        assert result.actual.missed == 0
        withdrawn = [e for e in result.log if e.type == "conversation.offer_withdrawn"]
        assert [(e.occurred_at, e.data["reason"]) for e in withdrawn] == [
            (at(31), "expired"),
            (at(61), "expired"),
            (at(91), "expired"),
            (at(100), "closed"),  # the customer left when she did in reality
        ]
        closed = [e for e in result.log if e.type == "conversation.closed"]
        assert [(e.occurred_at, e.data["closed_by"]) for e in closed] == [(at(100), "customer")]


# Both online, every request offered to both (broadcast); a1 holds c1 for long, c2 and c3
# are short and both went to a2.
BROADCAST = in_log_order(
    [online("a1"), online("a2")],
    served("c1", "a1", requested=10, accepted=11, closed=500, offered_to=("a1", "a2")),
    served("c2", "a2", requested=20, accepted=21, closed=30, offered_to=("a1", "a2")),
    served("c3", "a2", requested=40, accepted=41, closed=100, offered_to=("a1", "a2")),
)


class TestRoutingMode:
    def test_least_busy_gives_the_third_chat_to_the_idle_agent(self) -> None:
        result = what_if(BROADCAST, "routing_mode=least_busy")
        assert loads(result.simulated) == {"a1": (1, 1), "a2": (2, 1)}
        assert result.simulated.waits_s == [1.0, 1.0, 1.0]

    def test_round_robin_gives_it_to_the_next_in_turn_even_while_busy(self) -> None:
        result = what_if(BROADCAST, "routing_mode=round_robin")
        # a1 lost c3 to a2 in reality: she accepts it after her own typical delay (1 s),
        # but no sooner than it stood for her without her acting (1 s, and a millisecond)
        assert loads(result.simulated) == {"a1": (2, 2), "a2": (1, 1)}
        assert result.simulated.waits_s == [1.0, 1.0, 1.001]
        assert loads(result.actual) == {"a1": (1, 1), "a2": (2, 1)}

    def test_the_same_input_gives_the_same_simulated_log(self) -> None:
        first = what_if(BROADCAST, "routing_mode=round_robin", "offer_timeout_s=5")
        second = what_if(BROADCAST, "routing_mode=round_robin", "offer_timeout_s=5")
        assert [e.model_dump() for e in first.log] == [e.model_dump() for e in second.log]


class TestChanges:
    @pytest.mark.parametrize(
        ("pair", "named"),
        [
            ("colour=red", "unknown key 'colour'"),
            ("routing_mode=fastest", "routing_mode:"),
            ("offer_timeout_s=1", "offer_timeout_s:"),
            ("max_chats.a1=0", "max_chats.a1:"),
            ("max_chats_default", "write KEY=VALUE"),
        ],
    )
    def test_a_bad_key_or_value_is_refused_naming_it(self, pair: str, named: str) -> None:
        with pytest.raises(WhatIfRefused, match=named):
            parse_changes([pair])

    def test_an_agent_the_log_does_not_know_is_refused(self) -> None:
        with pytest.raises(WhatIfRefused, match=r"max_chats\.zed: no agent 'zed'"):
            what_if(TWO_AT_ONCE, "max_chats.zed=2")

    def test_values_are_read_as_the_settings_page_reads_them(self) -> None:
        changes = parse_changes(
            ["max_chats_default=3", "groups.a1=b, a", "routing_mode=least_busy"]
        )
        assert changes.described() == {
            "max_chats_default": 3,
            "routing_mode": "least_busy",
            "groups.a1": ["a", "b"],
        }


def test_the_worked_example_of_docs_audit_md() -> None:
    """docs/audit.md "What-if routing": Ana and Ben's morning, two chats each, 30 s offers."""
    both = ("ana", "ben")
    events = in_log_order(
        [online("ana"), online("ben")],
        served("c1", "ana", requested=10, accepted=14, closed=720, offered_to=both),
        served("c2", "ben", requested=60, accepted=66, closed=300, offered_to=both),
        served("c3", "ana", requested=120, accepted=123, closed=480, offered_to=both),
        served("c4", "ana", requested=180, accepted=185, closed=600, offered_to=both),
        served("c5", "ben", requested=240, accepted=280, closed=540, offered_to=both),
    )
    result = simulate(
        TENANT,
        events,
        NOW,
        NOW + timedelta(minutes=15),
        parse_changes(["max_chats_default=2", "offer_timeout_s=30"]),
    )
    assert result.actual.as_json()["wait_s"] == {"p50": 5.0, "p90": 40.0, "p99": 40.0, "max": 40.0}
    assert result.simulated.as_json()["wait_s"] == {"p50": 4.0, "p90": 6.0, "p99": 6.0, "max": 6.0}
    assert (result.simulated.accepted, result.simulated.missed) == (4, 1)
    assert loads(result.actual) == {"ana": (3, 3), "ben": (2, 2)}
    assert loads(result.simulated) == {"ana": (2, 2), "ben": (2, 2)}
