"""The fold's memory bounds: applied in log order, so a replay forgets the same things."""

from datetime import UTC, datetime, timedelta

import pytest

from agent_service import fold
from agent_service.state import RoutingState
from contracts import Actor, Envelope

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
