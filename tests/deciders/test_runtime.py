"""The decider runtime's own rules, the same for every service."""

import re
from collections.abc import Sequence
from typing import Any

import pytest

from agent_service.decision import Decision as RoutingDecision
from agent_service.main import services
from agent_service.state import RoutingState
from contracts import COMMANDS, EVENTS, Envelope
from contracts.decisions import answered_command, decided_by
from contracts.replies import CommandReply
from relaydesk.decider import (
    Decider,
    DeciderRuntime,
    Decision,
    DecisionError,
    Rejected,
    UndeclaredDecision,
)
from relaydesk.settings import Settings
from tests.deciders.harness import (
    DESKS,
    NOW,
    Published,
    agent,
    billing_desk,
    command,
    connectors_desk,
    event,
    routing_desk,
)
from tests.deciders.test_redelivery import REDELIVERED, SAMPLES

# For each service, a type it does not decide (another service's, or nobody's).
NOT_OURS = {
    "agent": "agent.created",
    "admin": "conversation.closed",
    "billing": "billing.invoice_issued",
    "connectors": "connector.inbound_received",
}


@pytest.mark.parametrize("service", sorted(DESKS))
async def test_emitting_an_undeclared_decision_type_raises(service: str) -> None:
    desk = DESKS[service]()
    redelivered = REDELIVERED[service]()
    type_name = NOT_OURS[service]
    assert decided_by(type_name) != service

    def emit_not_ours(d: Decision[Any], _: Any) -> None:
        d.emit(type_name, {})

    desk.decider.handlers = {redelivered.type: emit_not_ours}
    with pytest.raises(UndeclaredDecision, match=re.escape(type_name)):
        await desk.when(redelivered)
    assert desk.published.events == [] and redelivered.id not in desk.decider.replies


def test_a_routing_decision_refuses_a_type_it_does_not_declare() -> None:
    decision = RoutingDecision(
        RoutingState(),
        command("conversation.close", {"conversation_id": "c1", "closed_by": "agent"}),
        now=NOW,
        offer_timeout_s=60,
        grace_s=30,
    )
    message = {
        "conversation_id": "c1",
        "message_id": "m1",
        "body": "hi",
        "author_kind": "agent",
        "author_id": "a1",
    }
    with pytest.raises(UndeclaredDecision):
        decision.emit("message.sent", message)
    assert decision.events == []


def test_every_declared_decider_owns_commands() -> None:
    """A DECIDED_BY naming no command owner could never be recorded as an answer."""
    owners = {getattr(COMMANDS.model_for(name), "SERVICE", None) for name in COMMANDS.names()}
    declared = {decided_by(name) for name in EVENTS.names()} - {None}
    assert declared <= owners
    assert set(SAMPLES) == {name for name in EVENTS.names() if decided_by(name)}


async def test_a_rejection_after_events_is_a_broken_decision_and_nothing_is_published() -> None:
    desk = routing_desk()

    def emit_then_refuse(d: Decision[Any], _: Any) -> None:
        d.emit("agent.status_changed", {"agent_id": "a1", "status": "online"}, stream="agent:a1")
        raise Rejected("forbidden", "too late to say no")

    sent = command("agent.set_status", {"agent_id": "a1", "status": "online"}, actor=agent("a1"))
    desk.decider.handlers = {sent.type: emit_then_refuse}
    with pytest.raises(DecisionError):
        await desk.when(sent)
    assert desk.published.events == []


def test_a_runtime_refuses_handlers_for_another_services_commands() -> None:
    desk = billing_desk()
    desk.decider.handlers = {"conversation.accept": lambda d, p: None}
    with pytest.raises(ValueError, match=r"conversation\.accept"):
        DeciderRuntime(desk.decider, Published())


@pytest.mark.parametrize(
    ("make_desk", "sent"),
    [
        (
            routing_desk,
            command("conversation.request", {"conversation_id": "c1", "visitor": {"id": "v1"}}),
        ),
        (billing_desk, command("billing.change_plan", {"plan": "business"})),
        (connectors_desk, command("connector.remove", {"connector_id": "tg1"})),
    ],
)
async def test_deciding_a_command_again_after_a_crash_emits_the_same_event_ids(
    make_desk: Any, sent: Envelope
) -> None:
    """Ids derive from the command id: a redelivery after publish-before-ack re-emits them."""
    log = [
        event(
            "tenant.created", {"tenant_id": "acme", "name": "Acme", "mode": "saas", "plan": "team"}
        ),
        event("agent.status_changed", {"agent_id": "a1", "status": "online"}, actor=agent("a1")),
        event("connector.configured", SAMPLES["connector.configured"]),
    ]
    first, restarted = make_desk().given(*log), make_desk().given(*log)
    await first.when(sent)
    await restarted.when(sent)
    assert first.published.events and [e.id for e in first.published.events] == [
        e.id for e in restarted.published.events
    ]
    assert all(e.causation_id == sent.id for e in first.published.events)


def test_answers_need_a_cause_and_a_declared_type() -> None:
    closed = SAMPLES["conversation.closed"]
    assert answered_command(event("conversation.closed", closed), "agent") is None
    caused = event("conversation.closed", closed, caused_by="cmd-1")
    assert answered_command(caused, "agent") == "cmd-1"
    assert answered_command(caused, "admin") is None
    rejected = {"command_id": "cmd-2", "command_type": "agent.remove", "reason": "not_found"}
    rejection = event("command.rejected", rejected, caused_by="cmd-2")
    assert answered_command(rejection, "admin") == "cmd-2"
    assert answered_command(rejection, "agent") is None


class Flaky(Decider[Decision[dict[str, str]]]):
    """A decider folding as it decides, whose publish fails: it must be told to rebuild."""

    service = "admin"

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.discarded = 0
        self.handlers = {"agent.remove": self.remove}
        self._replies: dict[str, CommandReply] = {}

    @property
    def replies(self) -> dict[str, CommandReply]:
        return self._replies

    def remove(self, d: Decision[dict[str, str]], payload: Any) -> None:
        d.emit("agent.removed", {"agent_id": payload.agent_id})

    def decision(self, command: Envelope, context: object) -> Decision[dict[str, str]]:
        return Decision("admin", self.state, command, now=NOW, fold=self.fold)

    def fold(self, event: Envelope) -> None:
        self.state[event.data["agent_id"]] = "removed"

    def discard(self) -> None:
        self.discarded += 1


async def test_a_failed_publish_after_folding_asks_the_decider_to_rebuild() -> None:
    async def broker_down(events: Sequence[Envelope]) -> None:
        raise ConnectionError("broker down")

    flaky = Flaky()
    with pytest.raises(ConnectionError):
        await DeciderRuntime(flaky, broker_down).handle(command("agent.remove", {"agent_id": "a1"}))
    assert flaky.discarded == 1 and flaky.replies == {}


def test_agent_service_always_starts_routing_and_administration() -> None:
    started = [type(service).__name__ for service in services(Settings())]
    assert started == ["AdminService", "AgentService"]
