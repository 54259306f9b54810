"""Property: any sequence of commands keeps the routing invariants, and replaying the
events it emitted rebuilds exactly the state the decisions left (the log is the truth)."""

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_service.decider import HANDLERS
from agent_service.decision import Decision
from agent_service.fold import apply
from agent_service.snapshot import to_records
from agent_service.state import CLOSED, ENGAGED, OFFERED, TRANSFER_PENDING, RoutingState
from contracts import Actor, Envelope, parse_command_data

AGENTS = ("a1", "a2", "a3")
CONVERSATIONS = ("c1", "c2", "c3", "c4")
MODES = ("broadcast", "round_robin", "least_busy")
PRELUDE = [("online", "c1", "a1"), ("online", "c1", "a2")]  # start where decisions happen

agent_ids = st.sampled_from(AGENTS)
conversation_ids = st.sampled_from(CONVERSATIONS)
STEP_KINDS = (  # repeated kinds are drawn more often
    "conversation.request",
    "conversation.accept",
    "accept_offer",
    "accept_offer",
    "decline_offer",
    "conversation.transfer",
    "conversation.close",
    "online",
    "away",
    "agent.connection_lost",
    "tick",
    "grace",
)
steps = st.tuples(st.sampled_from(STEP_KINDS), conversation_ids, agent_ids)


def command_for(step: tuple[str, str, str], state: RoutingState) -> Envelope:
    kind, conversation_id, agent_id = step
    if kind in (
        "accept_offer",
        "decline_offer",
    ):  # an agent answering an offer they hold (when any)
        current = state.tenant("acme").conversations.get(conversation_id)
        offered = sorted(current.offered_to) if current else []
        agent_id = offered[AGENTS.index(agent_id) % len(offered)] if offered else agent_id
        kind = "conversation.accept" if kind == "accept_offer" else "conversation.decline"
    actor = Actor(kind="agent", id=agent_id)
    data: dict[str, Any] = {"conversation_id": conversation_id, "agent_id": agent_id}
    if kind == "conversation.request":
        actor, data = (
            Actor(kind="customer", id=f"v-{conversation_id}"),
            {"conversation_id": conversation_id, "visitor": {"id": f"v-{conversation_id}"}},
        )
    elif kind in ("online", "away"):
        kind, data = "agent.set_status", {"agent_id": agent_id, "status": kind, "max_chats": 2}
    elif kind == "agent.connection_lost":
        data = {"agent_id": agent_id}
    elif kind == "conversation.transfer":
        current = state.tenant("acme").conversations.get(conversation_id)
        sender = (current.agent_id if current else None) or agent_id
        actor, data = (
            Actor(kind="agent", id=sender),
            {"conversation_id": conversation_id, "from_agent_id": sender, "to_agent_id": agent_id},
        )
    elif kind == "conversation.close":
        data = {"conversation_id": conversation_id, "closed_by": "agent"}
    elif kind == "tick":  # the timers fire
        kind, actor, data = (
            "conversation.expire_offers",
            Actor(kind="system", id="t"),
            {"conversation_id": conversation_id},
        )
    elif kind == "grace":
        kind, actor, data = (
            "agent.expire_disconnect",
            Actor(kind="system", id="t"),
            {"agent_id": agent_id},
        )
    return Envelope(
        type=kind, tenant="acme", stream=f"conv:{conversation_id}", actor=actor, data=data
    )


def check_invariants(state: RoutingState) -> None:
    tenant = state.tenant("acme")
    for agent in tenant.agents.values():
        assert len(agent.active) <= tenant.capacity(agent)
        for conversation_id in agent.active:
            assert tenant.conversations[conversation_id].agent_id == agent.agent_id
            assert tenant.conversations[conversation_id].status in (ENGAGED, TRANSFER_PENDING)
        for conversation_id in agent.offers:
            assert agent.agent_id in tenant.conversations[conversation_id].offered_to
    for conversation in tenant.conversations.values():
        if conversation.status in (ENGAGED, TRANSFER_PENDING):
            assert conversation.conversation_id in tenant.agents[conversation.agent_id].active
        if conversation.status == OFFERED:
            assert conversation.offered_to
        if conversation.status == CLOSED:
            assert not conversation.offered_to
        for agent_id in conversation.offered_to:
            assert conversation.conversation_id in tenant.agents[agent_id].offers
    positions = [c.position for c in tenant.queued()]
    assert positions == list(range(1, len(positions) + 1))


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from(MODES), script=st.lists(steps, min_size=10, max_size=60))
def test_any_command_sequence_keeps_invariants_and_replays_to_the_same_state(
    mode: str, script: list
) -> None:
    live = RoutingState()
    live.tenant("acme").settings["routing_mode"] = mode
    emitted: list[Envelope] = []
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    for step in [*PRELUDE, *script]:
        now += timedelta(seconds=61 if step[0] in ("tick", "grace") else 1)
        command = command_for(step, live)
        decision = Decision(live, command, now=now, offer_timeout_s=60, grace_s=30)
        HANDLERS[command.type](decision, parse_command_data(command))
        emitted += decision.events
        check_invariants(live)
    replayed = RoutingState()
    replayed.tenant("acme").settings["routing_mode"] = mode
    for event in emitted:
        apply(replayed, event)
    assert to_records(replayed) == to_records(live)
    assert len({e.id for e in emitted}) == len(emitted)
