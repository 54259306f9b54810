"""The fold's memory bounds: applied in log order, so a replay forgets the same things."""

from datetime import UTC, datetime, timedelta

import pytest

from agent_service import fold
from agent_service.queries import Queries
from agent_service.snapshot import from_records, to_records
from agent_service.state import RoutingState
from contracts import Actor, Envelope
from contracts.queries.agent import VisitorConversationQuery
from relaydesk.bus.rpc import RemoteError

START = datetime(2026, 1, 1, tzinfo=UTC)


def event(type_name: str, data: dict, at: datetime, causation: str | None = None) -> Envelope:
    return Envelope(
        type=type_name,
        tenant="acme",
        stream="conv:x",
        actor=Actor(kind="system", id="t"),
        occurred_at=at,
        causation_id=causation,
        data=data,
    )


def requested(conversation_id: str, at: datetime) -> Envelope:
    return event(
        "conversation.requested", {"conversation_id": conversation_id, "visitor": {"id": "v"}}, at
    )


def test_long_closed_conversations_are_forgotten_open_ones_kept() -> None:
    state = RoutingState()
    fold.apply(state, requested("old", START))
    fold.apply(
        state, event("conversation.closed", {"conversation_id": "old", "closed_by": "agent"}, START)
    )
    fold.apply(state, requested("still-open", START))
    later = START + fold.CLOSED_MEMORY + timedelta(days=1)
    for n in range(fold.PRUNE_EVERY_REQUESTS - 2):
        fold.apply(state, requested(f"new{n}", later))
    conversations = state.tenant("acme").conversations
    assert "old" not in conversations and "still-open" in conversations
    assert len(conversations) == fold.PRUNE_EVERY_REQUESTS - 1


def test_command_outcomes_are_capped_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fold, "MAX_REPLIES", 3)
    state = RoutingState()
    for n in range(5):
        fold.apply(
            state,
            requested(f"c{n}", START).model_copy(
                update={"causation_id": f"cmd{n}", "id": f"event-{n:04d}"}
            ),
        )
    assert list(state.replies) == ["cmd2", "cmd3", "cmd4"]
    assert state.replies["cmd4"].event_ids == ("event-0004",)


def visitor_requested(conversation_id: str, visitor: str, at: datetime) -> Envelope:
    return event(
        "conversation.requested",
        {"conversation_id": conversation_id, "visitor": {"id": visitor}},
        at,
    )


def visitor_conversation(state: RoutingState, visitor: str) -> str | None:
    try:
        answer = Queries(lambda: state).visitor_conversation(
            VisitorConversationQuery(tenant="acme", visitor_id=visitor)
        )
    except RemoteError as exc:
        assert exc.code == "not_found"
        return None
    return answer.conversation_id


def test_a_visitors_latest_conversation_is_theirs_until_it_closes() -> None:
    """What a reloading widget resumes (gateway's visitor session): the latest one, from
    routing's own state, and none once it is closed (or for anyone else)."""
    state = RoutingState()
    fold.apply(state, visitor_requested("first", "vic", START))
    fold.apply(
        state,
        event("conversation.closed", {"conversation_id": "first", "closed_by": "agent"}, START),
    )
    assert visitor_conversation(state, "vic") is None
    fold.apply(state, visitor_requested("second", "vic", START))
    fold.apply(state, visitor_requested("other", "val", START))
    assert visitor_conversation(state, "vic") == "second"
    fold.apply(
        state,
        event(
            "conversation.missed", {"conversation_id": "second", "reason": "no_agent_online"}, START
        ),
    )
    assert visitor_conversation(state, "vic") == "second"  # a missed chat is still theirs
    assert visitor_conversation(state, "nobody") is None
    # A snapshot restores the index: the latest by arrival, whatever the record order.
    records = to_records(state)
    assert visitor_conversation(from_records(list(reversed(records)), 0), "vic") == "second"


def test_forgetting_a_long_closed_conversation_forgets_its_visitor_entry() -> None:
    state = RoutingState()
    fold.apply(state, visitor_requested("old", "vic", START))
    fold.apply(
        state, event("conversation.closed", {"conversation_id": "old", "closed_by": "agent"}, START)
    )
    later = START + fold.CLOSED_MEMORY + timedelta(days=1)
    for n in range(fold.PRUNE_EVERY_REQUESTS - 1):
        fold.apply(state, visitor_requested(f"new{n}", f"v{n}", later))
    assert "vic" not in state.tenant("acme").latest_by_visitor
