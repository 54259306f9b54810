"""The fan-out filter per audience, as pure functions (no broker, no sockets).

One conversation ``c1`` of tenant ``acme``: visitor ``v1``, assigned to ``ann``, offered to
``olga``. ``bob`` is another agent of the tenant, ``sue`` a supervisor, ``xavier`` an owner
of another tenant, ``v2`` another visitor.
"""

from typing import Any

import orjson
import pytest

from contracts.audience import Audience, fields_withheld, without
from contracts.envelope import Actor, ActorKind, Envelope, LoggedEvent
from contracts.events.admin import AgentCreated
from contracts.events.conversation import (
    ConversationAccepted,
    ConversationOffered,
    ConversationRated,
    ConversationRequested,
    OfferDeclined,
    OfferWithdrawn,
    TransferRequested,
)
from contracts.events.message import MessageSent, TypingChanged
from contracts.registry import EVENTS
from gateway.auth.permissions import effective_permissions
from gateway.auth.tokens import AgentPrincipal, Principal, VisitorPrincipal
from gateway.directory import ConversationDirectory, ConversationInfo
from gateway.sessions import Session, SessionRegistry
from gateway.tailer import Tailer
from gateway.visibility import (
    WHOLE,
    EventDelivery,
    delivery,
    listed_conversation,
    listed_queue_item,
    visible,
)


def agent(agent_id: str, role: str = "agent", tenant: str = "acme") -> AgentPrincipal:
    return AgentPrincipal(tenant, agent_id, role, effective_permissions(role))


ANN, OLGA, BOB, SUE = agent("ann"), agent("olga"), agent("bob"), agent("sue", "supervisor")
XAVIER = agent("xavier", "owner", tenant="other")
V1, V2 = VisitorPrincipal("acme", "v1"), VisitorPrincipal("acme", "v2")
EVERYONE: dict[str, Principal] = {
    "ann": ANN,
    "olga": OLGA,
    "bob": BOB,
    "sue": SUE,
    "xavier": XAVIER,
    "v1": V1,
    "v2": V2,
}
VISITOR = {"id": "v1", "name": "Vera", "email": "vera@example.com", "page_url": "https://s/p?o=7"}


def conversation() -> ConversationInfo:
    return ConversationInfo("acme", "c1", visitor_id="v1", agent_id="ann", offered_to={"olga"})


def event(type_name: str, **data: Any) -> Envelope:
    return Envelope(
        type=type_name,
        tenant="acme",
        stream="conv:c1",
        actor=Actor(kind=ActorKind.system, id="test"),
        data={"conversation_id": "c1", **data},
    )


def receivers(envelope: Envelope, info: ConversationInfo | None = None) -> set[str]:
    info = info if info is not None else conversation()
    return {name for name, p in EVERYONE.items() if visible(p, envelope, info)}


def test_visitor_audience_is_the_conversations_own_visitor_only() -> None:
    sent = event(MessageSent.TYPE, message_id="m1", body="hi", author_kind="agent", author_id="ann")
    assert "v1" in receivers(sent) and "v2" not in receivers(sent)
    # A visitor's own typing does not come back to them; the agent's does.
    assert "v1" not in receivers(
        event(TypingChanged.TYPE, who_kind="customer", who_id="v1", typing=True)
    )
    assert "v1" in receivers(event(TypingChanged.TYPE, who_kind="agent", who_id="ann", typing=True))


def test_conversation_content_reaches_its_agents_and_supervisors_only() -> None:
    sent = event(
        MessageSent.TYPE, message_id="m1", body="hi", author_kind="customer", author_id="v1"
    )
    assert receivers(sent) == {"ann", "olga", "sue", "v1"}
    # Nobody assigned or offered yet: supervisors (and the visitor) only.
    waiting = ConversationInfo("acme", "c1", visitor_id="v1")
    assert receivers(sent, waiting) == {"sue", "v1"}


def test_an_offer_reaches_the_agents_it_names_and_supervisors() -> None:
    offered = event(ConversationOffered.TYPE, agent_ids=["olga"], expires_in_s=30)
    assert receivers(offered) == {"olga", "sue"}
    transfer_offer = event(ConversationOffered.TYPE, agent_ids=["bob"], transfer_from="ann")
    assert receivers(transfer_offer) == {"bob", "ann", "sue"}
    # Withdrawn offers reach their agents although the directory no longer lists them.
    withdrawn = event(OfferWithdrawn.TYPE, agent_ids=["olga"], reason="accepted_by_other")
    after = ConversationInfo("acme", "c1", visitor_id="v1", agent_id="ann")
    assert receivers(withdrawn, after) == {"olga", "sue"}
    assert receivers(event(OfferDeclined.TYPE, agent_id="olga")) == {"olga", "sue"}


def test_a_transfer_note_reaches_the_two_agents_of_the_transfer_and_supervisors() -> None:
    note = event(TransferRequested.TYPE, from_agent_id="ann", to_agent_id="bob", note="vip")
    assert receivers(note) == {"ann", "bob", "sue"}
    to_group = event(TransferRequested.TYPE, from_agent_id="ann", to_group="billing", note="x")
    assert receivers(to_group) == {"ann", "sue"}


def test_tenant_wide_events_reach_every_agent_of_the_tenant_and_the_visitor() -> None:
    accepted = event(ConversationAccepted.TYPE, agent_id="ann")
    assert receivers(accepted) == {"ann", "olga", "bob", "sue", "v1"}


def test_a_rating_is_for_the_agent_who_handled_it_and_supervisors() -> None:
    rated = event(ConversationRated.TYPE, score=2, comment="slow")
    closed = ConversationInfo("acme", "c1", visitor_id="v1", agent_id="ann", status="closed")
    assert receivers(rated, closed) == {"ann", "sue", "v1"}


def test_an_undeclared_type_reaches_nobody_not_even_an_owner() -> None:
    created = Envelope(
        type=AgentCreated.TYPE,
        tenant="acme",
        stream="agent:a9",
        actor=Actor(kind=ActorKind.admin, id="boss"),
        data={"agent_id": "a9", "email": "a@b.c", "name": "A", "password_hash": "$argon2$x"},
    )
    assert {n for n, p in EVERYONE.items() if visible(p, created, None)} == set()
    assert not visible(agent("boss", "owner"), created, None)


def test_the_request_reaches_every_agent_without_the_visitors_contact_details() -> None:
    requested = event(ConversationRequested.TYPE, channel="web", visitor=VISITOR, topic="billing")
    new = ConversationInfo("acme", "c1", visitor_id="v1")
    contact = {"visitor.email", "visitor.page_url", "visitor.platform_user_id"}
    assert delivery(BOB, requested, new) == contact
    assert delivery(ANN, requested, new) == contact  # not (yet) hers
    assert delivery(SUE, requested, new) == WHOLE
    assert delivery(V1, requested, new) == WHOLE
    assert delivery(XAVIER, requested, new) is None
    # Once the conversation is hers (a resume after the accept), its agent gets it whole.
    assert delivery(ANN, requested, conversation()) == WHOLE
    shown = without(requested.data, contact)
    assert shown["visitor"] == {"id": "v1", "name": "Vera"} and shown["topic"] == "billing"


def test_withheld_fields_are_those_every_audience_of_the_recipient_withholds() -> None:
    rules = {
        Audience.TENANT_AGENTS: frozenset({"a", "b"}),
        Audience.NAMED_AGENTS: frozenset({"b", "c"}),
    }
    assert fields_withheld(rules, []) is None
    assert fields_withheld(rules, [Audience.TENANT_AGENTS]) == {"a", "b"}
    assert fields_withheld(rules, [Audience.TENANT_AGENTS, Audience.NAMED_AGENTS]) == {"b"}
    assert fields_withheld(rules, [Audience.NAMED_AGENTS, Audience.SUPERVISORS]) == WHOLE


def test_without_removes_nested_paths_and_ignores_absent_ones() -> None:
    data: dict[str, Any] = {"visitor": {"id": "v1", "email": "e"}, "topic": "t"}
    assert without(data, ["visitor.email", "visitor.page_url", "missing.x", "topic"]) == {
        "visitor": {"id": "v1"}
    }
    assert data["visitor"]["email"] == "e"  # the original is untouched


def test_http_listings_tell_no_more_than_the_fan_out() -> None:
    document = {"conversation_id": "c1", "agent_id": "ann", "visitor": dict(VISITOR)}
    assert listed_conversation(ANN, document)["visitor"]["email"] == "vera@example.com"
    assert listed_conversation(SUE, document)["visitor"]["email"] == "vera@example.com"
    assert listed_conversation(BOB, document)["visitor"] == {"id": "v1", "name": "Vera"}
    item = {"conversation_id": "c1", "offered_to": ["olga", "bob"]}
    assert listed_queue_item(BOB, item) == {"conversation_id": "c1", "offered_to_me": True}
    assert listed_queue_item(ANN, item)["offered_to_me"] is False
    assert listed_queue_item(SUE, item)["offered_to"] == ["olga", "bob"]


class _Socket:
    """Stands in for the websocket: the fan-out only queues frames on the session."""


def _queued(session: Session) -> list[dict[str, Any]]:
    frames = []
    while session._queue:
        frames.append(orjson.loads(session._queue.pop(0)))  # type: ignore[arg-type]
    return frames


@pytest.mark.parametrize("resume", [False, True])
async def test_the_tailer_sends_each_recipient_its_part_of_the_event(resume: bool) -> None:
    directory, registry = ConversationDirectory(), SessionRegistry()
    tailer = Tailer(None, directory, registry, buffer_size=100)  # type: ignore[arg-type]
    sessions = {name: Session(_Socket(), p, 100) for name, p in EVERYONE.items()}  # type: ignore[arg-type]
    if not resume:
        for session in sessions.values():
            tailer.attach(session, None)
    requested = event(ConversationRequested.TYPE, visitor=VISITOR)
    tailer._dispatch(LoggedEvent(position=7, envelope=requested))
    offered = event(ConversationOffered.TYPE, agent_ids=["olga"])
    tailer._dispatch(LoggedEvent(position=8, envelope=offered))
    if resume:
        for session in sessions.values():
            assert tailer.attach(session, 6)
        # The replay marker stands for the backlog: take it as the frames it holds.
        got = {name: [orjson.loads(f) for f in s._backlog or ()] for name, s in sessions.items()}
    else:
        got = {name: _queued(s) for name, s in sessions.items()}
    types = {name: [f["event"]["type"] for f in frames] for name, frames in got.items()}
    assert types == {
        "ann": [ConversationRequested.TYPE],
        "olga": [ConversationRequested.TYPE, ConversationOffered.TYPE],
        "bob": [ConversationRequested.TYPE],
        "sue": [ConversationRequested.TYPE, ConversationOffered.TYPE],
        "xavier": [],
        "v1": [ConversationRequested.TYPE],
        "v2": [],
    }
    visitor_as_seen = {
        name: frames[0]["event"]["data"]["visitor"] for name, frames in got.items() if frames
    }
    assert visitor_as_seen["bob"] == visitor_as_seen["ann"] == {"id": "v1", "name": "Vera"}
    # Olga was offered the conversation by the time she resumed: she may read it whole then.
    assert visitor_as_seen["olga"] == (VISITOR if resume else {"id": "v1", "name": "Vera"})
    assert visitor_as_seen["sue"] == visitor_as_seen["v1"] == VISITOR
    assert got["bob"][0]["position"] == 7 and got["bob"][0]["event"]["id"] == requested.id


def _fan_out(envelope: Envelope, registry_sessions: dict[str, Session]) -> set[str]:
    directory, registry = ConversationDirectory(), SessionRegistry()
    directory.put(conversation())
    tailer = Tailer(None, directory, registry, buffer_size=100)  # type: ignore[arg-type]
    for session in registry_sessions.values():
        tailer.attach(session, None)
    tailer._dispatch(LoggedEvent(position=1, envelope=envelope))
    return {name for name, session in registry_sessions.items() if _queued(session)}


@pytest.mark.parametrize("type_name", [t for t in EVENTS.names() if EVENTS.audience(t)])
async def test_the_narrowed_fan_out_reaches_exactly_whom_visibility_allows(type_name: str) -> None:
    """The tailer offers a conversation's event to its agents, the supervisors and the
    visitor only (not every agent of the tenant): for every declared type, the sockets
    that get it are exactly the principals ``visible`` admits."""
    data: dict[str, Any] = {"visitor": VISITOR}
    for field in EVENTS.named_agent_fields(type_name):
        data[field] = ["bob"] if field.endswith("s") else "bob"
    envelope = event(type_name, **data)
    sessions = {name: Session(_Socket(), p, 100) for name, p in EVERYONE.items()}  # type: ignore[arg-type]

    assert _fan_out(envelope, sessions) == receivers(envelope)


async def test_a_chat_message_is_judged_for_its_own_agents_not_every_agent_signed_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    judged: list[Principal] = []
    judge = EventDelivery.to

    def counting(self: EventDelivery, principal: Principal) -> frozenset[str] | None:
        judged.append(principal)
        return judge(self, principal)

    monkeypatch.setattr(EventDelivery, "to", counting)
    crowd = {f"agent{n}": agent(f"agent{n}") for n in range(50)}
    everyone = {**EVERYONE, **crowd}
    sessions = {name: Session(_Socket(), p, 100) for name, p in everyone.items()}  # type: ignore[arg-type]

    reached = _fan_out(event(MessageSent.TYPE, body="hi"), sessions)

    assert reached == {"ann", "olga", "sue", "v1"}
    assert sorted(p.actor_id for p in judged) == ["ann", "olga", "sue", "v1"]  # was all 56


def test_a_removed_agent_socket_leaves_every_index() -> None:
    registry = SessionRegistry()
    sessions = [Session(_Socket(), p, 100) for p in (ANN, ANN, SUE)]  # type: ignore[arg-type]
    for session in sessions:
        registry.add(session)
    registry.remove(sessions[0])
    registry.remove(sessions[2])

    assert registry.agent_sessions("acme", "ann") == [sessions[1]]
    assert registry.candidates("acme", None, every_agent=False, overseers=True) == []
    assert len(registry) == 1
